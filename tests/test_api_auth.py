"""API authentication and permissions: bearer tokens (none, bad, expired, read-only, write), model
permissions, the browsable API's session with CSRF, last-used bookkeeping, and create_api_token."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from overrides.models import ApiToken, ModulePullOverride, hash_token
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

READS = [("get", "/api/v1/overrides/"), ("get", "/api/v1/overrides/echo/"), ("get", "/api/v1/sources/"),
         ("get", "/api/v1/overrides/echo/digests/"), ("get", "/api/v1/audit/")]
WRITES = [
    ("patch", "/api/v1/overrides/echo/", {"imageTag": "pr2"}, 200),
    ("put", "/api/v1/overrides/echo/", {"source": "dev", "imageTag": "pr3"}, 200),
    ("post", "/api/v1/overrides/echo/renew/", {}, 202),
    ("post", "/api/v1/overrides/", {"name": "other", "source": "dev", "imageTag": "main"}, 201),
    ("put", "/api/v1/sources/dev/", {"registry": {"repo": "registry.example.com/x"}}, 200),
    ("delete", "/api/v1/overrides/echo/", None, 204),
]


@pytest.fixture
def echo(make_source, make_override):
    return make_override(name="echo", source=make_source(name="dev"))


def _call(client, method, url, data=None):
    return getattr(client, method)(url, data, format="json") if data is not None else getattr(client, method)(url)


@pytest.mark.parametrize("kind", ["none", "unknown", "expired", "malformed", "inactive-owner"])
def test_without_a_valid_token_every_endpoint_is_401_with_challenge(kind, ci_user, echo):
    token = {
        "none": None,
        "unknown": "mpo_" + "x" * 43,
        "expired": make_token(ci_user, expires_at=timezone.now() - timedelta(seconds=1)),
        "malformed": "two words",
        "inactive-owner": make_token(ci_user),
    }[kind]
    if kind == "inactive-owner":
        ci_user.is_active = False
        ci_user.save()
    client = client_with(token)
    for method, url, *rest in READS + WRITES:
        response = _call(client, method, url, rest[0] if rest else None)
        assert response.status_code == 401, (kind, method, url)
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response["Content-Type"] == "application/json"
    assert ModulePullOverride.objects.get(name="echo").image_tag == "main"


def test_expired_token_says_so(ci_user, echo):
    token = make_token(ci_user, expires_at=timezone.now() - timedelta(days=1))
    assert "expired" in client_with(token).get("/api/v1/overrides/").json()["detail"]


def test_read_only_token_reads_but_cannot_write(ci_user, echo):
    client = client_with(make_token(ci_user, write=False))
    for method, url in READS:
        assert _call(client, method, url).status_code == 200, url
    assert client.get("/api/v1/overrides/echo/rollout/?timeout=0").status_code == 409  # sync off: a read
    for method, url, data, _ in WRITES:
        response = _call(client, method, url, data)
        assert response.status_code == 403 and "read-only" in response.json()["detail"], (method, url)
    assert ModulePullOverride.objects.get(name="echo").image_tag == "main"


@pytest.mark.parametrize(("method", "url", "data", "expected"), WRITES)
def test_write_token_writes(ci_user, echo, method, url, data, expected):
    response = _call(client_with(make_token(ci_user)), method, url, data)
    assert response.status_code == expected, response.content


def test_owner_without_model_permissions_gets_403(django_user_model, echo):
    nobody = django_user_model.objects.create_user(username="nobody", password="unused-pass-123")
    client = client_with(make_token(nobody))
    for method, url, *rest in READS + WRITES:
        assert _call(client, method, url, rest[0] if rest else None).status_code == 403, (method, url)


def test_each_action_needs_its_own_permission(django_user_model, echo):
    user = django_user_model.objects.create_user(username="viewer", password="unused-pass-123")
    client = client_with(make_token(user))

    def grant(*codenames):
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        user.refresh_from_db()

    grant("view_modulepulloverride")
    assert client.get("/api/v1/overrides/").status_code == 200
    assert client.get("/api/v1/overrides/echo/digests/").status_code == 200
    assert client.get("/api/v1/sources/").status_code == 403
    assert client.get("/api/v1/audit/").status_code == 403
    assert client.post("/api/v1/overrides/echo/renew/", {}, format="json").status_code == 403
    grant("change_modulepulloverride")
    assert client.post("/api/v1/overrides/echo/renew/", {}, format="json").status_code == 202
    assert client.put("/api/v1/overrides/echo/", {"source": "dev", "imageTag": "pr1"}, format="json").status_code == 200
    # An upsert that would create needs the add permission.
    response = client.put("/api/v1/overrides/new/", {"source": "dev", "imageTag": "pr1"}, format="json")
    assert response.status_code == 403 and "add_modulepulloverride" in response.json()["detail"]
    assert client.delete("/api/v1/overrides/echo/").status_code == 403
    grant("add_modulepulloverride")
    assert client.put("/api/v1/overrides/new/", {"source": "dev", "imageTag": "pr1"}, format="json").status_code == 201


def test_superuser_token_can_do_everything(admin_user, echo):
    client = client_with(make_token(admin_user))
    assert client.get("/api/v1/audit/").status_code == 200
    assert client.delete("/api/v1/overrides/echo/").status_code == 204


def test_web_session_uses_the_browsable_api_with_csrf(ci_user, echo):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ci_user)
    page = browser.get("/api/v1/overrides/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"echo" in page.content
    assert browser.patch("/api/v1/overrides/echo/", '{"imageTag": "pr5"}',
                         content_type="application/json").status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else browser.cookies["csrftoken"].value
    response = browser.patch("/api/v1/overrides/echo/", '{"imageTag": "pr5"}', content_type="application/json",
                             HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert changes(ModulePullOverride.objects.get(name="echo"))[-1].user_name == "ci-bot"


def test_last_used_is_written_at_most_once_a_minute(ci_user, echo):
    plaintext = make_token(ci_user)
    token = ApiToken.objects.get(key_hash=hash_token(plaintext))
    client = client_with(plaintext)
    assert token.last_used_at is None
    client.get("/api/v1/sources/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    client.get("/api/v1/sources/")
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/v1/sources/")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_create_api_token_prints_the_token_alone_on_the_last_line(ci_user):
    out = StringIO()
    call_command("create_api_token", "ci-bot", "--read-only", "--expires-days", "30", "--description", "gitlab",
                 stdout=out)
    lines = out.getvalue().splitlines()
    plaintext = lines[-1]
    assert plaintext.startswith("mpo_") and " " not in plaintext
    token = ApiToken.objects.get(key_hash=hash_token(plaintext))
    assert token.user == ci_user and not token.write_enabled and token.description == "gitlab"
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert plaintext not in token.key_hash
    assert client_with(plaintext).get("/api/v1/overrides/").status_code == 200
    assert client_with(plaintext).post("/api/v1/overrides/", {}, format="json").status_code == 403


def test_create_api_token_refuses_bad_input(ci_user):
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "ghost", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("create_api_token", "ci-bot", "--expires-days", "0", stdout=StringIO(), stderr=StringIO())
    out = StringIO()
    call_command("create_api_token", "ci-bot", stdout=out)
    token = ApiToken.objects.get(key_hash=hash_token(out.getvalue().splitlines()[-1]))
    assert token.write_enabled and token.expires_at is None
