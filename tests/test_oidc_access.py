"""What a provider sign-in leads to: personal tokens that never outlive their user's role, the web audit trail
with the provider's identity, local login turned off, a misconfigured issuer, and the flow in a real browser."""

from __future__ import annotations

import functools
import html
import http.server
import json
import re
import socket
import threading

import pytest
import requests
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By

from overrides import services
from overrides.audit import Actor
from overrides.identity import discovery
from overrides.models import ModulePullOverride, ObjectChange
from tests.fixtures.browser import wait_until
from tests.fixtures.oidc import OidcFlow

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


@pytest.fixture(autouse=True)
def _fresh_issuer_verdict():
    discovery._verdicts.clear()
    yield
    discovery._verdicts.clear()


@pytest.fixture
def dev_source(db):
    return services.source_create(actor=Actor.system("cli"), name="dev", repo="registry.example.com/modules")


def _form_fields(page: str, form_id: str) -> dict[str, str]:
    form = re.search(rf'<form[^>]*id="{form_id}"[^>]*>(.*?)</form>', page, re.S).group(1)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def _create_token(flow: OidcFlow) -> str:
    page = flow.page("/tokens/")
    data = {**_form_fields(page.text, "token-form"), "description": "pipeline"}
    response = flow.session.post(f"{flow.base_url}/tokens/", data=data, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return re.search(r'id="new-token-value">([^<]+)<', response.text).group(1)


def _api(live_server, token: str, method: str, path: str, body=None) -> requests.Response:
    return requests.request(method, f"{live_server.url}/api/v1{path}", json=body, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})


def test_a_token_loses_what_its_user_loses_in_the_provider(oidc, live_server, dev_source):
    oidc.set_user(oidc.sub, groups=["team-a"], username="tess")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    token = _create_token(flow)
    assert _api(live_server, token, "PUT", "/overrides/echo/", {"source": "dev", "imageTag": "pr1"}).status_code == 201
    change = ObjectChange.objects.get(object_repr="echo")
    assert change.user_name == "tess" and change.identity == f"token {token[:8]}…"

    oidc.set_user(oidc.sub, groups=["readers"], username="tess")  # developer → viewer in the provider
    OidcFlow(live_server.url).sign_in(oidc.sub)
    refused = _api(live_server, token, "PATCH", "/overrides/echo/", {"imageTag": "pr2"})
    assert refused.status_code == 403
    assert ModulePullOverride.objects.get(name="echo").image_tag == "pr1"
    assert _api(live_server, token, "GET", "/overrides/echo/").status_code == 200

    oidc.set_user(oidc.sub, groups=[], username="tess")  # no group at all: refused, every role dropped
    OidcFlow(live_server.url).sign_in(oidc.sub)
    assert _api(live_server, token, "GET", "/overrides/echo/").status_code == 403

    User.objects.filter(username="tess").update(is_active=False)
    assert _api(live_server, token, "GET", "/overrides/echo/").status_code == 401
    oidc.set_user(oidc.sub, groups=["team-a"], username="tess")  # a deactivated user cannot sign in again
    flow = OidcFlow(live_server.url)
    assert flow.sign_in(oidc.sub).status_code < 500
    assert 'class="logout"' not in flow.page("/").text
    assert _api(live_server, token, "GET", "/overrides/echo/").status_code == 401


def test_web_changes_record_the_providers_identity(oidc, live_server, dev_source):
    oidc.set_user(oidc.sub, groups=["devs"], username="uma", email="uma@corp.example")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    form = flow.page("/new/override/")
    assert form.status_code == 200
    data = {"csrfmiddlewaretoken": flow.session.cookies["csrftoken"],
            "source": "dev", "name": "hello", "image_tag": "main", "scan_interval": "1m"}
    response = flow.session.post(f"{live_server.url}/new/override/", data=data, timeout=10)
    assert response.status_code == 200 and response.url.endswith("/overrides/hello/")
    change = ObjectChange.objects.get(object_repr="hello")
    assert (change.context, change.user_name, change.identity) == ("web", "uma", "uma@corp.example")
    assert "uma@corp.example" in flow.page("/audit/").text


def test_local_login_off_hides_the_form_and_refuses_its_post(oidc, live_server, settings, admin_user):
    settings.PORTAL_LOCAL_LOGIN = False
    session = requests.Session()
    page = session.get(f"{live_server.url}/login/", timeout=10)
    assert "Sign in with Test IdP" in page.text and 'name="password"' not in page.text
    refused = session.post(f"{live_server.url}/login/", timeout=10, data={
        "csrfmiddlewaretoken": session.cookies["csrftoken"], "username": "admin", "password": "admin-pass-123"})
    assert refused.status_code == 403 and "PORTAL_LOCAL_LOGIN=0" in refused.text
    assert 'class="logout"' not in session.get(f"{live_server.url}/", timeout=10).text
    admin_login = session.get(f"{live_server.url}/admin/login/?next=/admin/", timeout=10)
    assert "Sign in with Test IdP" in admin_login.text and 'name="password"' not in admin_login.text
    refused = session.post(f"{live_server.url}/admin/login/", timeout=10, data={
        "csrfmiddlewaretoken": session.cookies["csrftoken"], "username": "admin", "password": "admin-pass-123"})
    assert refused.status_code == 403


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("issuer, problem", [
    (lambda provider, portal: f"http://127.0.0.1:{_closed_port()}", "cannot be reached"),
    (lambda provider, portal: f"{provider.issuer}/not-an-issuer", "answered HTTP 404"),
    (lambda provider, portal: portal, "answered HTTP 404"),  # the portal itself: a web page, no document
], ids=["unreachable", "no-document", "a-web-site"])
def test_a_misconfigured_issuer_leaves_local_login_working_and_tells_admins(
        oidc, live_server, settings, admin_user, issuer, problem):
    settings.PORTAL_OIDC_ISSUER = settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = issuer(oidc, live_server.url)
    flow = OidcFlow(live_server.url)
    page = flow.page("/login/")
    assert page.status_code == 200 and 'name="password"' in page.text
    fields = _form_fields(page.text, "oidc-login")
    attempt = flow.session.post(f"{live_server.url}/oauth/login/oidc/", data=fields, timeout=20)
    assert attempt.status_code < 500 and attempt.url.startswith(f"{live_server.url}/login/")
    assert "The authentication provider" in attempt.text and 'name="password"' in attempt.text
    login = {"csrfmiddlewaretoken": flow.session.cookies["csrftoken"], "username": "admin",
             "password": "admin-pass-123"}
    dashboard = flow.session.post(f"{live_server.url}/login/", data=login, timeout=10)
    assert 'class="logout"' in dashboard.text
    banner = html.unescape(dashboard.text)
    assert "Sign-in with the identity provider does not work" in banner and problem in banner


def test_a_missing_client_secret_is_named_in_the_banner(oidc, client, settings, admin_user):
    settings.PORTAL_OIDC_CLIENT_SECRET = settings.SOCIAL_AUTH_OIDC_SECRET = ""
    client.force_login(admin_user)
    assert "PORTAL_OIDC_CLIENT_SECRET is not set" in client.get("/").content.decode()


@pytest.fixture
def document_server(tmp_path):
    """A real HTTP server answering `/.well-known/openid-configuration` with a document the test writes."""
    (tmp_path / ".well-known").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"

    def serve(document) -> str:
        (tmp_path / ".well-known" / "openid-configuration").write_text(json.dumps(document))
        return url

    yield serve
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("document, problem", [
    ({"issuer": "placeholder"}, "lacks authorization_endpoint, token_endpoint, jwks_uri"),
    ({"issuer": "https://elsewhere.example", "authorization_endpoint": "https://elsewhere.example/auth",
      "token_endpoint": "https://elsewhere.example/token", "jwks_uri": "https://elsewhere.example/keys"},
     'names the issuer "https://elsewhere.example"'),
    (["not", "an", "object"], "not a discovery document"),
], ids=["incomplete", "other-issuer", "not-an-object"])
def test_a_wrong_discovery_document_is_named_in_the_banner(oidc, live_server, settings, admin_user,
                                                          document_server, document, problem):
    settings.PORTAL_OIDC_ISSUER = settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = document_server(document)
    flow = OidcFlow(live_server.url)
    page = flow.page("/login/")
    attempt = flow.session.post(f"{live_server.url}/oauth/login/oidc/", data=_form_fields(page.text, "oidc-login"),
                                timeout=20, allow_redirects=False)
    assert attempt.status_code == 302  # back to the login page, or (other issuer) on to its authorize URL
    login = {"csrfmiddlewaretoken": flow.session.cookies["csrftoken"], "username": "admin",
             "password": "admin-pass-123"}
    banner = html.unescape(flow.session.post(f"{live_server.url}/login/", data=login, timeout=10).text)
    assert "Sign-in with the identity provider does not work" in banner and problem in banner


def test_sign_in_in_a_real_browser(oidc, live_server, browser):
    oidc.set_user(oidc.sub, groups=["team-a"], username="vera")
    browser.get(f"{live_server.url}/overrides/echo/")  # a page that needs a login: back there afterwards
    browser.find_element(By.CSS_SELECTOR, "#oidc-login button").click()
    wait_until(browser, lambda b: b.find_elements(By.NAME, "sub"), message="the provider's page did not open")
    browser.find_element(By.NAME, "sub").send_keys(oidc.sub)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "form.logout"), message="sign-in failed")
    assert browser.find_element(By.CSS_SELECTOR, ".who").text == "vera"
    assert browser.current_url.endswith("/overrides/echo/")
    assert set(User.objects.get(username="vera").groups.values_list("name", flat=True)) == {"developer"}


def test_a_provider_group_with_a_module_scope_restricts_its_members(oidc, live_server, dev_source):
    from django.contrib.auth.models import Group

    from overrides.models import ModuleScope

    ModuleScope.objects.create(group=Group.objects.create(name="team-a"), pattern="team-a-*")
    oidc.set_user(oidc.sub, groups=["team-a", "devs"], username="wes")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    assert set(User.objects.get(username="wes").groups.values_list("name", flat=True)) == {"developer", "team-a"}
    token = _create_token(flow)
    refused = _api(live_server, token, "PUT", "/overrides/echo/", {"source": "dev", "imageTag": "pr1"})
    assert refused.status_code == 403 and 'group "team-a" may change team-a-*' in refused.json()["detail"]
    assert not ModulePullOverride.objects.filter(name="echo").exists()
    assert _api(live_server, token, "PUT", "/overrides/team-a-web/", {"source": "dev", "imageTag": "pr1"}
                ).status_code == 201

    oidc.set_user(oidc.sub, groups=["devs"], username="wes")  # out of team-a in the provider: no scope any more
    OidcFlow(live_server.url).sign_in(oidc.sub)
    assert set(User.objects.get(username="wes").groups.values_list("name", flat=True)) == {"developer"}
    assert _api(live_server, token, "PUT", "/overrides/echo/", {"source": "dev", "imageTag": "pr1"}).status_code == 201
