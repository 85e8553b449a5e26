"""Start-up behaviour: development defaults, production refusing to start without real keys, first admin."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

BASE_DIR = Path(__file__).resolve().parents[1]


def _manage(tmp_path, *args, **env):
    """`manage.py ARGS` (or `python -m portal.devkeys` for args ("devkeys",)) in a fresh process with a fresh
    var/ directory, the portal's own settings and the given environment."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("PORTAL_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    command = ["-m", "portal.devkeys"] if args == ("devkeys",) else ["manage.py", *args]
    return subprocess.run(
        [sys.executable, *command], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
        env={**clean, "PORTAL_VAR_DIR": str(tmp_path / "var"), **env},
    )


def _check(tmp_path, **env):
    return _manage(tmp_path, "check", **env)


def test_settings_write_nothing_and_a_missing_key_says_in_one_line_how_to_make_it(tmp_path):
    result = _check(tmp_path)
    assert result.returncode != 0
    assert not (tmp_path / "var").exists()
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "PORTAL_SECRET_KEY is not set" in result.stderr and "make dev-keys" in result.stderr


def test_development_keys_are_made_once_by_the_command(tmp_path):
    made = _manage(tmp_path, "devkeys")
    assert made.returncode == 0, made.stderr
    keys = {p.name: p.read_text() for p in (tmp_path / "var").glob("dev-*")}
    assert set(keys) == {"dev-secret-key", "dev-encryption-key"}
    assert oct((tmp_path / "var" / "dev-encryption-key").stat().st_mode & 0o777) == "0o600"
    assert _check(tmp_path).returncode == 0
    assert _manage(tmp_path, "devkeys").returncode == 0
    assert {p.name: p.read_text() for p in (tmp_path / "var").glob("dev-*")} == keys
    (tmp_path / "var" / "dev-encryption-key").unlink()
    result = _check(tmp_path)
    assert result.returncode != 0 and "PORTAL_ENCRYPTION_KEYS is not set" in result.stderr


@pytest.mark.parametrize("missing", ["PORTAL_SECRET_KEY", "PORTAL_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_real_keys(tmp_path, missing):
    env = {"PORTAL_PRODUCTION": "1", "PORTAL_SECRET_KEY": "x" * 50,
           "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    del env[missing]
    result = _check(tmp_path, **env)
    assert result.returncode != 0
    assert f"{missing} must be set when PORTAL_PRODUCTION=1" in result.stderr
    assert not (tmp_path / "var").exists()


def test_production_starts_with_keys(tmp_path):
    result = _check(tmp_path, PORTAL_PRODUCTION="1", PORTAL_SECRET_KEY="x" * 50,
                    PORTAL_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}")
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_ensure_admin_creates_one_superuser_once(capsys, monkeypatch, django_user_model):
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = out.split("password: ")[1].split()[0]
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    call_command("ensure_admin")
    assert capsys.readouterr().out == "" and django_user_model.objects.count() == 1


@pytest.mark.django_db
def test_ensure_admin_takes_the_password_from_the_environment(capsys, monkeypatch, django_user_model):
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "from-the-env-123")
    call_command("ensure_admin")
    assert "from-the-env-123" not in capsys.readouterr().out
    assert django_user_model.objects.get(username="admin").check_password("from-the-env-123")


def test_request_id_is_echoed(client):
    response = client.get("/login/", HTTP_X_REQUEST_ID="3f1c1c1e-8d0e-4a57-9a39-1f6f6b6f1d2a")
    assert response["X-Request-ID"] == "3f1c1c1e-8d0e-4a57-9a39-1f6f6b6f1d2a"
    assert len(client.get("/login/", HTTP_X_REQUEST_ID="not a uuid")["X-Request-ID"]) == 36


@pytest.mark.django_db
def test_ensure_admin_from_env_never_generates_a_password(capsys, monkeypatch, django_user_model):
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin", "--from-env")
    assert "createsuperuser" in capsys.readouterr().out and not django_user_model.objects.exists()
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "from-the-env-123")
    call_command("ensure_admin", "--from-env")
    assert django_user_model.objects.get(username="admin").check_password("from-the-env-123")


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("PORTAL_Q_WORKERS", "abc", "PORTAL_Q_WORKERS must be a whole number, not 'abc'."),
    ("PORTAL_POLL_THREADS", "-2", "PORTAL_POLL_THREADS must be at least 1, not '-2'."),
    ("PORTAL_CLUSTER_TIMEOUT", "0", "PORTAL_CLUSTER_TIMEOUT must be a positive number, not '0'."),
    ("PORTAL_AUTO_RENEW_FLOOR", "5s", "PORTAL_AUTO_RENEW_FLOOR must be a number, not '5s'."),
])
def test_a_malformed_number_stops_start_up_with_one_line_naming_it(tmp_path, variable, value, says):
    assert _manage(tmp_path, "devkeys").returncode == 0
    result = _check(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert result.stderr.strip() == f"mpo-portal: invalid settings: {says}"
