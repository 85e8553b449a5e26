"""The worker's liveness probe (`manage.py worker_alive`) against a real qcluster and the real lease row."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from overrides.management.commands.worker_alive import lease_problem
from overrides.models import Lease
from overrides.polling.lease import LEASE, ensure_lease
from tests.fixtures.jobs import BASE_DIR, qcluster_env, wait_for


def _probe() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "worker_alive"], cwd=BASE_DIR, capture_output=True,
                          text=True, timeout=60, env=qcluster_env())


def test_probe_follows_the_qcluster(qcluster_factory):
    assert "no qcluster" in _probe().stderr  # nothing runs yet
    cluster = qcluster_factory(dispatcher=False)
    alive = wait_for(lambda: (r := _probe()).returncode == 0 and r, timeout=20, what="the probe to pass")
    assert alive.stdout.strip() == f"worker alive on {socket.gethostname()}"
    cluster.stop()  # SIGKILL: the status it saved expires within 3 s
    dead = wait_for(lambda: (r := _probe()).returncode == 1 and r, timeout=20, what="the probe to fail")
    assert dead.stderr.strip().startswith("worker not alive: no qcluster on")


@pytest.mark.django_db
def test_probe_fails_when_this_hosts_lease_is_not_renewed():
    ensure_lease()
    host = socket.gethostname()
    grace = timedelta(seconds=120)
    Lease.objects.filter(name=LEASE).update(holder=f"{host}:42:abc", expires_at=timezone.now() + timedelta(seconds=5))
    assert lease_problem(host, grace) == ""  # held and renewed
    Lease.objects.filter(name=LEASE).update(expires_at=timezone.now() - timedelta(seconds=60))
    assert lease_problem(host, grace) == ""  # expired, but the watchdog still has time to start a new chain
    Lease.objects.filter(name=LEASE).update(expires_at=timezone.now() - timedelta(seconds=600))
    assert f"held by {host}:42:abc was not renewed for 600 s" in lease_problem(host, grace)
    assert lease_problem("another-pod", grace) == ""  # someone else's lease is not this worker's problem


def test_worker_pod_serves_its_qcluster_metrics_with_the_token(tmp_path):
    """portal/worker_metrics.py sums what the worker's processes wrote to the shared multiprocess directory."""
    from django.conf import settings

    from tests.registries.processes import free_port

    port = free_port()
    env = {**qcluster_env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PORTAL_METRICS_TOKEN": "scrape-me",
           "PORTAL_WORKER_METRICS_PORT": str(port), "PORTAL_SECRET_KEY": settings.SECRET_KEY}
    subprocess.run([sys.executable, "-c", "from portal import metrics; "
                    "metrics.REGISTRY_CHECKS.labels(result='changed', host='r.example').inc()"],
                   cwd=BASE_DIR, env=env, check=True, timeout=60)  # as a qcluster worker process would
    server = subprocess.Popen([sys.executable, "-m", "portal.worker_metrics"], cwd=BASE_DIR, env=env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _get(url) is not None, timeout=20, what="the worker metrics server")
        assert _get(url).status_code == 401
        assert _get(url, "Bearer wrong").status_code == 401
        answer = _get(url, "Bearer scrape-me")
        assert answer.status_code == 200
        assert 'mpo_portal_registry_checks_total{host="r.example",result="changed"} 1.0' in answer.text
    finally:
        server.terminate()
        server.wait(10)


def _get(url: str, authorization: str = ""):
    import requests

    try:
        return requests.get(url, headers={"Authorization": authorization} if authorization else {}, timeout=5)
    except requests.ConnectionError:
        return None


def test_probe_passes_when_the_broker_is_unreachable(transactional_db):
    from tests.registries.processes import free_port

    env = {**qcluster_env(), "PORTAL_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run([sys.executable, "manage.py", "worker_alive"], cwd=BASE_DIR, capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr  # restarting the worker would not bring Redis back
    assert "not checked: the broker did not answer" in result.stdout
