"""One read rule for the UI and the API: viewing needs the view permission (`overrides.view_*`). A signed-in
user without it gets 403 on every page and look-up, as the API answers the same user."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import pytest
from django.contrib.auth.models import Permission

from tests.test_api_support import *

pytestmark = pytest.mark.django_db

UI_READS = {
    "/": "view_modulepulloverride", "/dashboard/rows/": "view_modulepulloverride",
    "/overrides/echo/": "view_modulepulloverride", "/overrides/echo/live/": "view_modulepulloverride",
    "/sources/": "view_modulesource", "/sources/dev/": "view_modulesource",
    "/sources/dev/modules/": "view_modulesource", "/sources/dev/tags/?module=echo": "view_modulesource",
    "/audit/": "view_objectchange",
}
API_READS = {"/api/v1/overrides/": "view_modulepulloverride", "/api/v1/sources/": "view_modulesource",
             "/api/v1/audit/": "view_objectchange", "/api/v1/overrides/echo/digests/": "view_modulepulloverride"}


@pytest.fixture
def echo(make_source, make_override):
    return make_override(name="echo", source=make_source(name="dev"))


@pytest.fixture
def nobody(django_user_model):
    return django_user_model.objects.create_user(username="nobody", password="nobody-pass-123")


def _grant(user, codename):
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)


def test_user_without_permissions_reads_nothing_in_the_ui_nor_the_api(client, nobody, echo):
    client.force_login(nobody)
    for url in UI_READS:
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"echo" not in response.content or url.startswith("/overrides/echo"), url
    token = client_with(make_token(nobody))
    for url in API_READS:
        assert token.get(url).status_code == 403, url


@pytest.mark.parametrize("codename", ["view_modulepulloverride", "view_modulesource", "view_objectchange"])
def test_each_view_permission_opens_exactly_its_pages_in_both(client, nobody, echo, codename):
    user = _grant(nobody, codename)
    client.force_login(user)
    token = client_with(make_token(user))
    for url, needed in UI_READS.items():
        assert (client.get(url).status_code == 200) == (needed == codename), url
    for url, needed in API_READS.items():
        assert (token.get(url).status_code == 200) == (needed == codename), url


def test_override_page_shows_audit_records_only_with_the_audit_permission(client, nobody, echo):
    user = _grant(nobody, "view_modulepulloverride")
    client.force_login(user)
    assert "Audit records" not in client.get("/overrides/echo/").content.decode()
    client.force_login(_grant(user, "view_objectchange"))
    assert "Audit records" in client.get("/overrides/echo/").content.decode()
