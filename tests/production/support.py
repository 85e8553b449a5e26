"""Shared parts of the production-shape tests (`make test-production`: PostgreSQL + Redis, several processes).

They run only when the test database is PostgreSQL and the broker Redis (`tests/scripts/with-postgres` and
`tests/scripts/with-redis` set that up); under `make test` they are skipped.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from overrides.models import Lease, ModulePullOverride
from overrides.polling.lease import LEASE
from tests.fixtures.jobs import wait_for

INTERVAL = 2.0
AUTO_RENEW_OFF = {"PORTAL_AUTO_RENEW": "0"}  # one change, one apply: no renew of a new digest on top


def production_stack() -> bool:
    return (os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(os.environ.get("PORTAL_REDIS_URL")))


needs_production_stack = pytest.mark.skipif(
    not production_stack(), reason="needs PostgreSQL and Redis: run `make test-production`")


def control(variable: str, action: str) -> None:
    """Stop or start the test's PostgreSQL or Redis server (`PORTAL_TEST_POSTGRES_CTL`, `PORTAL_TEST_REDIS_CTL`)."""
    subprocess.run([os.environ[variable], action], check=True, timeout=60)


class Api:
    """A token's view of one web server."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v1/{path}", timeout=30, **kwargs)


def make_overrides(api: Api, others: list[Api], registry, repo: str, count: int) -> list[str]:
    """`count` overrides at INTERVAL on one source, each pushed first, written through the given servers in turn."""
    assert api("PUT", "sources/dev/", json={"registry": {"repo": repo, "scheme": "HTTP"}}).status_code == 201
    modules = [registry.unique("p") for _ in range(count)]
    servers = [api, *others]
    for index, module in enumerate(modules):
        registry.push(module, "main", f"{module} v1")
        response = servers[index % len(servers)]("PUT", f"overrides/{module}/", json={
            "source": "dev", "imageTag": "main", "scanInterval": f"{INTERVAL:g}s"})
        assert response.status_code == 201, response.text
    return modules


def all_checked(modules: list[str]) -> bool:
    return ModulePullOverride.objects.filter(name__in=modules).exclude(registry_digest="").count() == len(modules)


def lease_holder_pid() -> int | None:
    holder = Lease.objects.filter(name=LEASE).values_list("holder", flat=True).first() or ""
    parts = holder.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def process_group(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def check_times(counting_proxy, module: str, tag: str = "main") -> list[float]:
    return counting_proxy.times(f"/{module}/manifests/{tag}")


def assert_no_double_checks(times: list[float]) -> None:
    """No slot checked twice. Slots keep their phase (`next_check_at` moves by whole intervals, a missed slot is
    skipped), so the phase of the last, steady check names every check's slot; a check is at or a little after
    its due time (a late check after an outage belongs to the slot it was due in)."""
    if len(times) < 2:
        return
    phase = times[-1] % INTERVAL
    slots = [int((t - phase + 0.1) // INTERVAL) for t in times]
    assert len(set(slots)) == len(slots), list(zip(slots, times, strict=True))


def assert_no_missed_slots(times: list[float], start: float, end: float) -> None:
    """Every slot in [start, end) had its check; one fewer is allowed on this shared 2-core machine."""
    inside = [t for t in times if start <= t < end]
    slots = int((end - start) / INTERVAL)
    assert slots - 1 <= len(inside) <= slots + 1, (slots, inside)


def wait_synced(module: str, tag: str, emulator, timeout: float = 60.0) -> None:
    def done():
        row = ModulePullOverride.objects.filter(name=module).first()
        cr = emulator.get("mpo", module)
        return (row is not None and row.sync_state == "synced" and row.image_tag == tag and cr is not None
                and cr.get("spec", {}).get("imageTag") == tag)

    wait_for(done, timeout=timeout, interval=0.2, what=f"{module} synced at {tag}")


def applies_of(emulator, module: str) -> int:
    return len([w for w in emulator.writes(actor="http", resource="mpo", include_noop=False) if w.name == module])


def now() -> float:
    return time.time()
