"""API tokens are minted by one service (overrides.tokens): nobody but a superuser creates or revokes a token of
another user, a token's user never changes, and the audit records each token without its plaintext."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.urls import reverse

from overrides.models import ApiToken, ObjectChange
from overrides.tokens import token_create, token_revoke
from tests.test_api_support import client_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_staff(django_user_model):
    """A staff user holding only the API-token admin permissions."""
    user = django_user_model.objects.create_user(username="staff", password="staff-pass-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=[
        "add_apitoken", "change_apitoken", "view_apitoken", "delete_apitoken"]))
    return user


def test_admin_refuses_a_token_for_another_user(client, token_staff, admin_user):
    client.force_login(token_staff)
    response = client.post(reverse("admin:overrides_apitoken_add"),
                           {"user": admin_user.pk, "description": "mine now", "write_enabled": "on"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.filter(user=admin_user).exists()
    assert 'name="user"' in response.content.decode()
    assert f'<option value="{admin_user.pk}"' not in response.content.decode()  # not even offered


def test_admin_cannot_move_a_token_to_another_user(client, token_staff, admin_user):
    token, _ = token_create(actor=token_staff, owner=token_staff, description="ci")
    client.force_login(token_staff)
    url = reverse("admin:overrides_apitoken_change", args=[token.pk])
    response = client.post(url, {"user": admin_user.pk, "description": "moved", "write_enabled": "on"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.user == token_staff and token.description == "moved"


def test_admin_shows_a_staff_user_only_their_own_tokens(client, token_staff, admin_user):
    token_create(actor=admin_user, owner=admin_user, description="the superuser's")
    own, _ = token_create(actor=token_staff, owner=token_staff, description="the staff user's")
    client.force_login(token_staff)
    page = client.get(reverse("admin:overrides_apitoken_changelist")).content.decode()
    assert "the staff user&#x27;s" in page and "the superuser&#x27;s" not in page
    other = ApiToken.objects.get(user=admin_user)
    assert client.get(reverse("admin:overrides_apitoken_change", args=[other.pk])).status_code == 302  # "not found"
    client.post(reverse("admin:overrides_apitoken_delete", args=[own.pk]), {"post": "yes"})
    assert not ApiToken.objects.filter(pk=own.pk).exists()
    assert ObjectChange.objects.filter(object_type="apitoken", action="delete", object_id=own.pk,
                                       context="admin").exists()


def test_admin_superuser_creates_a_token_for_someone_else(client, admin_user, token_staff):
    client.force_login(admin_user)
    response = client.post(reverse("admin:overrides_apitoken_add"),
                           {"user": token_staff.pk, "description": "for staff", "write_enabled": "on"})
    assert response.status_code == 200
    plaintext = response.context["plaintext"]
    token = ApiToken.objects.get(user=token_staff)
    change = ObjectChange.objects.get(object_type="apitoken", object_id=token.pk)
    assert change.action == "create" and change.context == "admin" and change.user == admin_user
    assert change.after["owner"] == "staff" and change.after["hint"] == token.key_hint
    assert plaintext not in str(change.after) and token.key_hash not in str(change.after)
    audit = client.get("/audit/").content.decode()
    assert "API token" in audit and "owner: staff" in audit and plaintext not in audit


def test_the_model_refuses_a_change_of_user(token_staff, admin_user):
    token, _ = token_create(actor=token_staff, owner=token_staff)
    token = ApiToken.objects.get(pk=token.pk)
    token.user = admin_user
    with pytest.raises(ValidationError, match="cannot change"):
        token.save()
    assert ApiToken.objects.get(pk=token.pk).user == token_staff


def test_the_service_refuses_other_owners_except_for_superusers(token_staff, admin_user):
    with pytest.raises(PermissionDenied):
        token_create(actor=token_staff, owner=admin_user)
    token, plaintext = token_create(actor=admin_user, owner=token_staff, read_only=True)
    assert not token.write_enabled and client_with(plaintext).get("/api/v1/overrides/").status_code == 403
    with pytest.raises(PermissionDenied):
        token_revoke(actor=token_staff, token=token_create(actor=admin_user, owner=admin_user)[0])
    token_revoke(actor=token_staff, token=token)
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_create_api_token_goes_through_the_service_and_is_audited(token_staff):
    out = StringIO()
    call_command("create_api_token", "staff", "--description", "gitlab", stdout=out)
    plaintext = out.getvalue().splitlines()[-1]
    change = ObjectChange.objects.get(object_type="apitoken")
    assert change.context == "cli" and change.action == "create" and change.after["owner"] == "staff"
    assert plaintext not in str(change.after) and plaintext not in change.object_repr
