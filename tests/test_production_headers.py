"""Production hardening: HSTS, a Content-Security-Policy without inline script, `check --deploy` with only the
warnings README explains, the API docs behind a login, and only well-formed X-Request-IDs taken from clients."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from overrides.models import ObjectChange
from tests.test_api_support import *

BASE_DIR = Path(__file__).resolve().parents[1]
EXPLAINED_DEPLOY_WARNINGS = {"security.W005", "security.W008", "security.W021"}


def _production(tmp_path, code: str = "", *args: str, **env) -> subprocess.CompletedProcess:
    """Python code, or manage.py with `args`, in a fresh process with PORTAL_PRODUCTION=1 and real keys."""
    (tmp_path / "var").mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path / "var"),
           "PORTAL_PRODUCTION": "1", "PORTAL_SECRET_KEY": "k" + "Xy7#q" * 12,
           "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(), **env}
    command = [sys.executable, "manage.py", *args] if args else [sys.executable, "-c", code]
    return subprocess.run(command, cwd=BASE_DIR, capture_output=True, text=True, timeout=120, env=env)


def test_production_sends_hsts_and_csp(tmp_path):
    code = ("import django; django.setup(); from django.test import Client; "
            "r = Client().get('/login/', secure=True); "
            "print(r.status_code); print(r['Strict-Transport-Security']); print(r['Content-Security-Policy'])")
    result = _production(tmp_path, code, PORTAL_ALLOWED_HOSTS="testserver")
    status, hsts, csp = result.stdout.strip().splitlines()[-3:]
    assert status == "200", result.stderr
    assert hsts == "max-age=31536000"
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp


def test_check_deploy_leaves_only_the_warnings_readme_explains(tmp_path):
    result = _production(tmp_path, "", "check", "--deploy")
    assert result.returncode == 0, result.stderr
    warnings = set(re.findall(r"\((\w+\.\w+)\)", result.stdout + result.stderr))
    assert warnings <= EXPLAINED_DEPLOY_WARNINGS, warnings
    readme = (BASE_DIR / "README.md").read_text()
    for warning in EXPLAINED_DEPLOY_WARNINGS:
        assert warning in readme


def test_api_docs_need_a_login_in_production(tmp_path):
    assert _production(tmp_path, "import django; django.setup(); from django.conf import settings; "
                                 "print(settings.PORTAL_API_DOCS_PUBLIC)").stdout.strip().endswith("False")


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/docs/?script="])
def test_api_docs_closed_unless_public(settings, ci_user, client, url):
    settings.PORTAL_API_DOCS_PUBLIC = False
    assert client.get(url).status_code == 401
    assert client_with(make_token(ci_user)).get(url).status_code == 200
    client.force_login(ci_user)
    assert client.get(url).status_code == 200
    settings.PORTAL_API_DOCS_PUBLIC = True
    client.logout()
    assert client.get(url).status_code == 200


def test_no_template_has_an_inline_script():
    for template in (BASE_DIR / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+\s*=", text), template  # no event handler attributes either


@pytest.mark.django_db
def test_pages_carry_the_policy(client, admin_user, make_override):
    make_override()
    client.force_login(admin_user)
    for url in ("/", "/overrides/echo/", "/sources/", "/audit/", "/admin/"):
        response = client.get(url)
        assert "script-src 'self';" in response["Content-Security-Policy"], url
        assert not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", response.content), url


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", [
    "not a uuid", "x" * 100, "3f1c1c1e8d0e4a579a391f6f6b6f1d2a----", "3f1c-1c1e-8d0e-4a57-9a39-1f6f-6b6f-1d2a",
    "{3f1c1c1e-8d0e-4a57-9a39-1f6f6b6f1d2a}",
])
def test_malformed_request_ids_are_replaced(ci_user, make_source, incoming):
    make_source(name="dev")
    response = client_with(make_token(ci_user)).post(
        "/api/v1/overrides/", {"name": "echo", "source": "dev", "imageTag": "main"}, format="json",
        HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 201
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", generated)
    assert str(ObjectChange.objects.get(object_type="modulepulloverride").request_id) == generated


@pytest.mark.django_db
def test_well_formed_request_ids_are_kept(ci_user, make_source):
    make_source(name="dev")
    response = client_with(make_token(ci_user)).post(
        "/api/v1/overrides/", {"name": "echo", "source": "dev", "imageTag": "main"}, format="json",
        HTTP_X_REQUEST_ID="3F1C1C1E8D0E4A579A391F6F6B6F1D2A")
    assert response["X-Request-ID"] == "3f1c1c1e-8d0e-4a57-9a39-1f6f6b6f1d2a"
    assert str(ObjectChange.objects.get(object_type="modulepulloverride").request_id) == response["X-Request-ID"]
