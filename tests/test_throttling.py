"""Throttling: sign-in failures per user and per address (django-axes) with "try again in N s" and a log line
for each failure; API requests per token and per address without credentials; failed tokens per address."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import logging
import re

import pytest
from django.test import Client

from tests.test_api_support import *

pytestmark = pytest.mark.django_db


@pytest.fixture
def login_limits(settings):
    settings.AXES_FAILURE_LIMIT = 5
    return settings


def _login(client, username, password, ip="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_wrong_passwords_lock_the_user_out_even_with_the_right_one(admin_user, login_limits, caplog):
    caplog.set_level(logging.WARNING)
    client = Client()
    assert [_login(client, "admin", "wrong").status_code for _ in range(5)] == [200] * 4 + [429]  # the 5th locks
    response = _login(client, "admin", "admin-pass-123")
    assert response.status_code == 429
    text = response.content.decode()
    wait = int(re.search(r"try again in (\d+) s", text).group(1))
    assert 0 < wait <= 300 and response["Retry-After"] == str(wait)
    assert '<form method="post"' in text  # still the login page, with the reason
    assert "_auth_user_id" not in client.session
    failures = [r.getMessage() for r in caplog.records if "login failure by" in r.getMessage()]
    assert len(failures) == 6 and all('"admin"' in m and "10.0.0.1" in m for m in failures)  # the locked one too
    assert not any("wrong" in r.getMessage() for r in caplog.records)  # the password is never logged


def test_one_address_is_locked_out_across_user_names(admin_user, login_limits):
    client = Client()
    for name in ("a1", "a2", "a3", "a4", "a5"):
        _login(client, name, "guess", ip="10.0.0.9")
    assert _login(client, "admin", "admin-pass-123", ip="10.0.0.9").status_code == 429
    assert _login(Client(), "other", "guess", ip="10.0.0.10").status_code == 200  # another address is not


def test_admin_login_is_throttled_too(admin_user, login_limits):
    client = Client()
    for _ in range(5):
        client.post("/admin/login/", {"username": "admin", "password": "wrong"}, REMOTE_ADDR="10.0.0.2")
    response = client.post("/admin/login/", {"username": "admin", "password": "admin-pass-123"},
                           REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 429 and "try again in" in response.content.decode()


def test_a_success_before_the_limit_resets_the_count(admin_user, login_limits):
    client = Client()
    for _ in range(4):
        _login(client, "admin", "wrong")
    assert _login(client, "admin", "admin-pass-123").status_code == 302
    client.logout()
    for _ in range(4):
        _login(client, "admin", "wrong")
    assert _login(client, "admin", "admin-pass-123").status_code == 302


def test_bad_tokens_are_throttled_per_address(ci_user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "bad_token": "10/min"}}
    good = make_token(ci_user)
    answers = [client_with("mpo_" + "x" * 43).get("/api/v1/overrides/", REMOTE_ADDR="10.1.0.1").status_code
               for _ in range(12)]
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429]
    blocked = client_with(good).get("/api/v1/overrides/", REMOTE_ADDR="10.1.0.1")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0  # a guess gains nothing now
    assert client_with(good).get("/api/v1/overrides/", REMOTE_ADDR="10.1.0.2").status_code == 200


def test_token_and_anonymous_requests_are_throttled(ci_user, settings):
    """Per token on every endpoint; without credentials where no login is needed (the schema), as elsewhere the
    permission check answers 401 first (and a failed token is counted by the bad-token throttle)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"token": "5/min", "anon": "3/min", "bad_token": "20/min"}}
    one, two = client_with(make_token(ci_user)), client_with(make_token(ci_user))
    assert [one.get("/api/v1/overrides/").status_code for _ in range(6)] == [200] * 5 + [429]
    assert "throttled" in one.get("/api/v1/overrides/").json()["detail"].lower()
    assert two.get("/api/v1/overrides/").status_code == 200  # counted per token
    anonymous = [client_with(None).get("/api/schema/").status_code for _ in range(4)]
    assert anonymous == [200, 200, 200, 429]
