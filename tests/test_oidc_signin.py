"""Sign-in with a real OIDC provider (tests/oidc/provider.py) through the real login page, with `requests`.

Roles follow the provider's groups on every sign-in; refusals (no mapped group, a wrong state, a replayed code,
an ID token for another audience, expired, or badly signed) create no user, sign nobody in and never answer 500.
"""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model

from tests.fixtures.oidc import OidcFlow

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def _roles(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def _signed_in(flow: OidcFlow) -> bool:
    return 'class="logout"' in flow.page("/").text


def test_login_page_offers_the_provider_and_the_local_form(oidc, live_server):
    page = OidcFlow(live_server.url).page("/login/")
    assert page.status_code == 200
    assert "Sign in with Test IdP" in page.text
    assert 'name="password"' in page.text
    # The browser follows the portal's redirect to the provider only if the page's form-action allows it.
    assert f"form-action 'self' {oidc.issuer};" in page.headers["Content-Security-Policy"]


def test_first_sign_in_creates_the_user_with_the_mapped_role(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["team-a", "unrelated"], username="alice")
    flow = OidcFlow(live_server.url)
    started = time.perf_counter()
    response = flow.sign_in(oidc.sub)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and urlsplit(response.url).path == "/"
    started = time.perf_counter()
    assert OidcFlow(live_server.url).sign_in(oidc.sub).status_code == 200  # discovery and keys now cached
    warm = time.perf_counter() - started
    print(f"sign-in round trip against the local provider: {elapsed * 1000:.0f} ms first, {warm * 1000:.0f} ms next")
    user = User.objects.get(username="alice")
    assert user.email == f"{oidc.sub}@example.com"
    assert _roles(user) == {"developer"}
    assert not user.is_staff and not user.is_superuser
    assert user.has_perm("overrides.add_modulepulloverride") and not user.has_perm("overrides.add_modulesource")
    assert _signed_in(flow)


def test_admin_group_gives_the_admin_role_and_the_django_admin(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["portal-admins"], username="root-ish")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    user = User.objects.get(username="root-ish")
    assert _roles(user) == {"admin"} and user.is_staff and user.is_superuser
    assert flow.page("/admin/").status_code == 200


def test_later_sign_in_with_fewer_groups_drops_the_role(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["portal-admins", "team-a"], username="bob")
    OidcFlow(live_server.url).sign_in(oidc.sub)
    assert _roles(User.objects.get(username="bob")) == {"admin", "developer"}
    oidc.set_user(oidc.sub, groups=["readers"], username="bob", email="bob@new.example")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    user = User.objects.get(username="bob")
    assert _roles(user) == {"viewer"} and not user.is_staff and not user.is_superuser
    assert user.email == "bob@new.example"  # what the provider says now
    assert User.objects.filter(username="bob").count() == 1
    assert urlsplit(flow.page("/admin/").url).path == "/admin/login/"  # the admin is not theirs any more


def test_no_mapped_group_is_refused_with_the_reason(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["marketing"], username="carol")
    flow = OidcFlow(live_server.url)
    response = flow.sign_in(oidc.sub)
    assert response.status_code == 200 and urlsplit(response.url).path == "/login/"
    text = html.unescape(response.text)
    assert "none of the groups that give a role" in text and "marketing" in text and "portal-admins" in text
    assert '<p class="message message-error">Your account is in none of the groups' in text
    assert not User.objects.filter(username="carol").exists()
    assert not _signed_in(flow)


def test_a_known_user_who_lost_every_mapped_group_is_refused_and_loses_the_roles(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["devs"], username="dave")
    OidcFlow(live_server.url).sign_in(oidc.sub)
    oidc.set_user(oidc.sub, groups=[], username="dave")
    flow = OidcFlow(live_server.url)
    flow.sign_in(oidc.sub)
    assert _roles(User.objects.get(username="dave")) == set()
    assert not _signed_in(flow)


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _assert_refused(flow: OidcFlow, response, username: str) -> None:
    assert response.status_code < 500, response.text[:500]
    assert not User.objects.filter(username=username).exists()
    assert not _signed_in(flow)


def test_a_wrong_state_is_refused(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["team-a"], username="erin")
    flow = OidcFlow(live_server.url)
    callback = flow.authorize(flow.begin(), oidc.sub)
    _assert_refused(flow, flow.callback(_with_query(callback, state="forged-state")), "erin")


def test_a_replayed_code_is_refused(oidc, live_server):
    oidc.set_user(oidc.sub, groups=["team-a"], username="frank")
    first = OidcFlow(live_server.url)
    callback = first.authorize(first.begin(), oidc.sub)
    assert first.callback(callback).status_code == 200 and _signed_in(first)
    # Another browser starts its own flow (a valid state of its own) and presents the code already used.
    User.objects.filter(username="frank").delete()
    thief = OidcFlow(live_server.url)
    own_state = dict(parse_qsl(urlsplit(thief.authorize(thief.begin(), oidc.sub)).query))["state"]
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    _assert_refused(thief, thief.callback(_with_query(callback, state=own_state, code=code)), "frank")
    # And the same browser replaying its own callback.
    _assert_refused(thief, first.callback(callback), "frank")


@pytest.mark.parametrize("fault", ["audience", "expired", "signature"])
def test_a_faulty_id_token_is_refused(oidc, live_server, fault):
    oidc.set_user(oidc.sub, groups=["team-a"], username=f"gina-{fault}")
    oidc.set_fault(fault)
    flow = OidcFlow(live_server.url)
    response = flow.sign_in(oidc.sub)
    _assert_refused(flow, response, f"gina-{fault}")
    assert urlsplit(response.url).path == "/login/"
