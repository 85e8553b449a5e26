"""Probes and outages: /livez, /readyz (database, migrations, broker) and 503s instead of 500s when the database
is gone. Outages are real: a PostgreSQL URL on a closed port, an unmigrated SQLite file, a stopped Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.registries.processes import free_port

BASE_DIR = Path(__file__).resolve().parents[1]

# Runs in a fresh process (its own settings from the environment) and prints what each path answered.
PROBE_SCRIPT = """
import json, django
django.setup()
from django.test import Client
client = Client()
answers = {}
for path, headers in [("/livez", {}), ("/readyz", {}), ("/api/v1/overrides/", {"HTTP_AUTHORIZATION": "Bearer x"}),
                      ("/", {"HTTP_COOKIE": "sessionid=abcdefghijklmnopqrstuvwxyz012345"})]:
    response = client.get(path, HTTP_HOST="10.1.2.3:8000" if path.endswith("z") else "localhost", **headers)
    answers[path] = [response.status_code, response.get("Content-Type", ""), response.content.decode(),
                     response.get("Retry-After")]
print(json.dumps(answers))
"""


def _probe(tmp_path, **env) -> dict:
    from django.conf import settings

    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("PORTAL_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    keys = {"PORTAL_SECRET_KEY": settings.SECRET_KEY,
            "PORTAL_ENCRYPTION_KEYS": ",".join(settings.PORTAL_ENCRYPTION_KEYS)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
        env={**clean, **keys, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path), **env})
    assert result.returncode == 0, result.stderr
    return {path: (code, ctype, json.loads(body) if "json" in ctype else body, retry)
            for path, (code, ctype, body, retry) in json.loads(result.stdout.splitlines()[-1]).items()}


def _test_database_url() -> str:
    from django.db import connection

    from tests.fixtures.jobs import _database_url

    return _database_url(connection.settings_dict)


def test_probes_answer_on_a_pod_address_without_an_allowed_host(client, db):
    for path in ("/livez", "/readyz"):
        response = client.get(path, HTTP_HOST="10.244.1.17:8000")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ok", "failing": [],
                                            "checks": {"database": "ok", "broker": "ok"}}


def test_database_outage_gives_503s_not_500s(tmp_path):
    answers = _probe(tmp_path, DATABASE_URL=f"postgres://mpo@127.0.0.1:{free_port()}/portal")
    assert answers["/livez"][0] == 200  # liveness never depends on the database
    code, _, body, _ = answers["/readyz"]
    assert code == 503 and body["failing"] == ["database"] and body["checks"]["database"] == "database unreachable"
    code, ctype, body, retry = answers["/api/v1/overrides/"]
    assert (code, ctype, retry) == (503, "application/json", "5")
    assert "database is unavailable" in body["detail"] and "Traceback" not in json.dumps(body)
    code, ctype, body, retry = answers["/"]  # a signed-in page: the session lookup meets the outage
    assert (code, retry) == (503, "5") and "database is unavailable" in body["detail"]


def test_a_database_host_that_never_answers_gives_503_within_the_connect_timeout(tmp_path):
    """A host that takes the TCP connection and then says nothing (a dropped route, a firewall): a listening socket
    that never accepts. The probe and the API give up after PORTAL_DB_CONNECT_TIMEOUT instead of hanging."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        answers = _probe(tmp_path, DATABASE_URL=f"postgres://mpo@127.0.0.1:{silent.getsockname()[1]}/portal",
                         PORTAL_DB_CONNECT_TIMEOUT="1")
    finally:
        silent.close()
    code, _, body, _ = answers["/readyz"]
    assert code == 503 and body["checks"]["database"] == "database unreachable"
    assert answers["/api/v1/overrides/"][0] == 503


def test_readyz_names_pending_migrations(tmp_path):
    answers = _probe(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    code, _, body, _ = answers["/readyz"]
    assert code == 503 and body["failing"] == ["database"]
    assert "not migrated" in body["checks"]["database"] and "migrate" in body["checks"]["database"]


@pytest.mark.django_db(transaction=True)
def test_readyz_checks_the_redis_broker(tmp_path, redis_server):
    database = _test_database_url()
    assert _probe(tmp_path, DATABASE_URL=database, PORTAL_REDIS_URL=redis_server.url)["/readyz"][0] == 200
    redis_server.stop()
    code, _, body, _ = _probe(tmp_path, DATABASE_URL=database, PORTAL_REDIS_URL=redis_server.url)["/readyz"]
    assert code == 503 and body["failing"] == ["broker"] and body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "broker (Redis) unreachable"


def test_a_missing_production_setting_stops_the_container_with_one_line(tmp_path):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("PORTAL_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    from cryptography.fernet import Fernet

    cases = {
        "PORTAL_SECRET_KEY": {},
        "PORTAL_ENCRYPTION_KEYS": {"PORTAL_SECRET_KEY": "x" * 50, "PORTAL_ENCRYPTION_KEYS": "not-a-key",
                                   "DATABASE_URL": "postgres://h/db"},
        "DATABASE_URL": {"PORTAL_SECRET_KEY": "x" * 50, "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode()},
    }
    for variable, env in cases.items():
        result = subprocess.run(
            [sys.executable, "-m", "portal.preflight"], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
            env={**clean, "PORTAL_PRODUCTION": "1", "PORTAL_VAR_DIR": str(tmp_path), **env})
        assert result.returncode == 2, (variable, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and variable in lines[0] and lines[0].startswith("mpo-portal: invalid settings:")


# A change through the API while Redis is down: saved and answered, its task left to the dispatcher's sweeps.
BROKER_DOWN_SCRIPT = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from overrides.models import ModuleSource
client = Client()
client.force_login(get_user_model().objects.create_superuser("ops", password="x" * 12))
response = client.post("/api/v1/sources/", {"name": "while-redis-is-down", "registry": {
    "repo": "registry.example.com/deckhouse/modules"}}, content_type="application/json", HTTP_HOST="localhost")
print(json.dumps([response.status_code, ModuleSource.objects.filter(name="while-redis-is-down").count()]))
"""


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_loses_no_accepted_change(tmp_path):
    from django.conf import settings

    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("PORTAL_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(tmp_path),
           "PORTAL_SECRET_KEY": settings.SECRET_KEY,
           "PORTAL_ENCRYPTION_KEYS": ",".join(settings.PORTAL_ENCRYPTION_KEYS),
           "DATABASE_URL": _test_database_url(), "PORTAL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run([sys.executable, "-c", BROKER_DOWN_SCRIPT], cwd=BASE_DIR, capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [201, 1]


def test_prometheus_scrapes_the_pod_address(client, db, settings):
    settings.PORTAL_METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics", HTTP_HOST="10.244.1.17:8000").status_code == 401
    answer = client.get("/metrics", HTTP_HOST="10.244.1.17:8000", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert answer.status_code == 200 and b"mpo_portal_" in answer.content
