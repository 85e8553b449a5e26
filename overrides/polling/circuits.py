"""Per registry host circuits: a failing registry host must not take every check worker.

Once a host times out, refuses connections, rate-limits or answers 5xx, the dispatcher's checks of its other
overrides wait for the host's retry time (and are deferred with the reason shown) instead of each waiting for its
own timeout; one probe then tries the host again. Per-override backoff is `overrides.polling.checks`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from overrides.models import ModuleSource
from overrides.polling.cadence import backoff_cap, doubling, not_before_retry_after
from registry.auth import registry_host
from registry.errors import ErrorKind, RegistryError

logger = logging.getLogger("overrides.polling.circuits")

HOST_BACKOFF_BASE = timedelta(seconds=5)
# Failures that say the host itself is unwell (rather than this tag, repository or credential).
HOST_FAILURES = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECTION_REFUSED, ErrorKind.RATE_LIMITED})


def host_of(source: ModuleSource) -> str:
    return registry_host(source.repo or "")


def opens_circuit(error: RegistryError | None) -> bool:
    """Does this failure say the whole registry host is unwell (so its other overrides should wait)?"""
    if error is None:
        return False
    if error.kind in HOST_FAILURES:
        return True
    return error.kind == ErrorKind.REGISTRY_ERROR and (error.status is None or error.status >= 500)


@dataclass
class HostState:
    failures: int = 0
    open_until: datetime | None = None
    message: str = ""
    probing: bool = False


@dataclass
class HostCircuits:
    """Per registry host: closed (checks go), open (its checks wait until `open_until`), half-open (one probe).

    A host opens on a host-level failure (timeout, refused, 429, 5xx) for 5 s, 10 s, 20 s, ... at most
    `backoff_cap()`, or until its `Retry-After`; once that passes a single check probes it, and a success closes it.
    It lives in the dispatcher that holds the lease and is handed to the next one (`dump`/`load`).
    """

    hosts: dict[str, HostState] = field(default_factory=dict)

    def gate(self, host: str, now: datetime) -> str:
        """"go"; "probe" (go: this check is the probe of a host whose retry time passed); "wait" (a probe is out:
        hold the check until its answer); or "open" (backing off until `hosts[host].open_until`: defer it)."""
        state = self.hosts.get(host)
        if state is None or state.open_until is None:
            return "go"
        if state.open_until > now:
            return "open"
        if state.probing:
            return "wait"
        state.probing = True
        return "probe"

    def record(self, host: str, error: RegistryError | None, now: datetime) -> None:
        state = self.hosts.setdefault(host, HostState())
        if not opens_circuit(error):
            if state.open_until is not None:
                logger.info("registry host %s answers again", host)
            self.hosts.pop(host, None)
            return
        state.failures += 1
        delay = not_before_retry_after(doubling(HOST_BACKOFF_BASE, state.failures, backoff_cap()),
                                       error.retry_after, now)
        state.open_until, state.message, state.probing = now + delay, error.message, False
        logger.warning("registry host %s failing (%s in a row): its checks wait until %s: %s", host, state.failures,
                       state.open_until.isoformat(timespec="seconds"), error.message)

    def dump(self) -> dict[str, Any]:
        return {h: {"failures": s.failures, "open_until": s.open_until.isoformat() if s.open_until else None,
                    "message": s.message} for h, s in self.hosts.items() if s.open_until is not None}

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> HostCircuits:
        circuits = cls()
        for host, item in (data or {}).items():
            try:
                until = datetime.fromisoformat(item["open_until"]) if item.get("open_until") else None
                circuits.hosts[host] = HostState(int(item.get("failures", 0)), until, str(item.get("message", "")))
            except (TypeError, ValueError, KeyError, AttributeError):
                continue
        return circuits
