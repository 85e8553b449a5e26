"""DEBUG is off unless asked for, and an error report (the debug page, an error e-mail) never shows a credential:
a forced error in the form, the admin and the API, rendered by Django's own technical 500 reporter."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from overrides import services
from registry import auth as registry_auth
from tests.registries.credentials import make_docker_cfg as docker_cfg_for
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[1]
STARS = "********************"
STORED_PW = "stored-password-4711"
NEW_PW = "typed-password-0815"
STORED_CFG = docker_cfg_for("registry.example.com", "robot", STORED_PW)
NEW_CFG = docker_cfg_for("registry.example.com", "robot", NEW_PW)


def _setting(name: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    if "PORTAL_VAR_DIR" in env:  # what `make run` does first: development keys under var/
        subprocess.run([sys.executable, "-m", "portal.devkeys"], cwd=BASE_DIR, check=True, capture_output=True,
                       timeout=60, env={**clean, "PORTAL_VAR_DIR": env["PORTAL_VAR_DIR"]})
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
                            env={**clean, "DJANGO_SETTINGS_MODULE": "portal.settings", **env})
    return (result.stdout + result.stderr).strip()


def test_debug_is_off_by_default_and_opt_in(tmp_path):
    assert _setting("DEBUG", PORTAL_VAR_DIR=str(tmp_path)) == "False"
    assert _setting("DEBUG", PORTAL_VAR_DIR=str(tmp_path), PORTAL_DEBUG="1") == "True"
    refused = _setting("DEBUG", PORTAL_VAR_DIR=str(tmp_path), PORTAL_DEBUG="1", PORTAL_PRODUCTION="1",
                       PORTAL_SECRET_KEY="x" * 50, PORTAL_ENCRYPTION_KEYS="a" * 43 + "=")
    assert "PORTAL_DEBUG=1 cannot be combined with PORTAL_PRODUCTION=1" in refused


def _explode(*args, **kwargs):
    raise RuntimeError("forced failure for the error report")


@pytest.fixture(params=["audit", "decoder"])
def failing_audit(monkeypatch, request):
    """The fault: the audit write fails after the credential was validated (inside the service), or the
    dockerCfg decoder fails while validating it (deep under model validation)."""
    if request.param == "audit":
        monkeypatch.setattr(services, "record_change", _explode)
    else:
        monkeypatch.setattr(registry_auth, "parse_json", _explode)


@pytest.fixture
def stored(make_source):
    return make_source(name="dev", repo="registry.example.com/modules", docker_cfg=STORED_CFG)


def _assert_clean(report: str) -> None:
    assert "forced failure for the error report" in report  # it is the report of our fault
    for secret in (STORED_PW, NEW_PW, STORED_CFG, NEW_CFG):
        assert secret not in report
    assert STARS in report


def test_debug_page_of_the_source_form_hides_credentials(settings, admin_user, stored, failing_audit):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    response = client.post("/sources/dev/edit/", {"name": "dev", "repo": "registry.example.com/modules",
                                                  "scheme": "HTTPS", "new_docker_cfg": NEW_CFG})
    assert response.status_code == 500 and b"Traceback" in response.content  # Django's technical 500 page
    _assert_clean(response.content.decode())


def test_debug_page_of_the_admin_hides_credentials(settings, admin_user, stored, failing_audit):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    url = reverse("admin:overrides_modulesource_change", args=[stored.pk])
    response = client.post(url, {"repo": "registry.example.com/modules", "scheme": "HTTPS",
                                 "new_docker_cfg": NEW_CFG, "ca": "", "release_channel": ""})
    assert response.status_code == 500 and b"Traceback" in response.content
    _assert_clean(response.content.decode())


def test_error_report_of_the_api_hides_credentials(ci_user, stored, failing_audit, caplog):
    caplog.set_level(logging.ERROR, logger="overrides.api")
    token = make_token(ci_user)
    response = client_with(token).patch("/api/v1/sources/dev/", {"registry": {"dockerCfg": NEW_CFG}}, format="json")
    assert response.status_code == 500 and "requestId" in response.json()
    record = next(r for r in caplog.records if r.exc_info)
    # What AdminEmailHandler mails, and what the debug page would show for the same exception.
    for is_email in (True, False):
        reporter = ExceptionReporter(None, *record.exc_info, is_email=is_email)
        _assert_clean(reporter.get_traceback_text())
        _assert_clean(reporter.get_traceback_html())
