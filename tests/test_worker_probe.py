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
