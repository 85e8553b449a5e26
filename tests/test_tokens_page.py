"""My tokens (overrides/views/tokens.py over overrides/tokens.py): create with description, read-only and expiry,
the token shown once, the list (prefix, description, scope, expiry, last used), revoke; admins see and revoke
every token; others' tokens are not theirs to revoke."""

import re

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from overrides.identity.roles import DEVELOPER, ensure_roles
from overrides.models import ApiToken, ModuleScope, hash_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def dev(django_user_model):
    ensure_roles()
    user = django_user_model.objects.create_user(username="dan", password="dan-pass-123")
    user.groups.set([Group.objects.get(name=DEVELOPER)])
    return user


def _created_token(response) -> str:
    match = re.search(r'id="new-token-value">([^<]+)<', response.content.decode())
    assert match, "the new token is not shown"
    return match.group(1)


def test_create_list_and_revoke(client, dev):
    client.force_login(dev)
    assert "No tokens yet." in client.get("/tokens/").content.decode()
    response = client.post("/tokens/", {"description": "project X", "read_only": "on", "expires_days": "30"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    plaintext = _created_token(response)
    token = ApiToken.objects.get(user=dev)
    assert token.key_hash == hash_token(plaintext) and not token.write_enabled and token.expires_at
    assert plaintext not in ApiToken.objects.filter(pk=token.pk).values_list("key_hash", "key_hint").get()
    page = client.get("/tokens/").content.decode()
    assert plaintext not in page  # shown once
    assert f"{token.key_hint}…" in page and "project X" in page and "read-only, all modules" in page
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/v1/overrides/").status_code == 200
    used = client.get("/tokens/").content.decode()
    assert re.search(r'data-label="Last used"><time datetime=', used)
    response = client.post(f"/tokens/{token.pk}/revoke/")
    assert response.status_code == 302 and not ApiToken.objects.filter(pk=token.pk).exists()
    assert api.get("/api/v1/overrides/").status_code == 401


def test_the_scope_column_shows_the_owners_module_scope(client, dev):
    team = Group.objects.create(name="team-a")
    ModuleScope.objects.create(group=team, pattern="team-a-*")
    dev.groups.add(team)
    client.force_login(dev)
    client.post("/tokens/", {"description": "ci"})
    page = client.get("/tokens/").content.decode()
    assert "read and write, modules team-a-*" in page
    assert "Your role: developer; you may change overrides of team-a-*." in page


def test_bad_input_is_a_form_error(client, dev):
    client.force_login(dev)
    response = client.post("/tokens/", {"expires_days": "0"})
    assert response.status_code == 400 and "greater than or equal to 1" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_others_tokens_are_not_listed_nor_revocable(client, dev, django_user_model, admin_user):
    other = django_user_model.objects.create_user(username="olga", password="olga-pass-123")
    client.force_login(other)
    client.post("/tokens/", {"description": "olga-ci"})
    token = ApiToken.objects.get(user=other)
    client.force_login(dev)
    assert "olga-ci" not in client.get("/tokens/").content.decode()
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.filter(pk=token.pk).exists()
    client.force_login(admin_user)
    page = client.get("/tokens/").content.decode()
    assert "olga-ci" in page and ">olga<" in page
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_login_required(client):
    assert client.get("/tokens/")["Location"].startswith("/login/")
