"""The dispatcher lease: only one dispatcher claims work at a time, across every qcluster.

`LEASE` names a row of our own `overrides.models.Lease` table: `holder` is the holder's token, `expires_at` the
lease's expiry, `successor` the token of a successor waiting for it, `state` what one holder hands to the next
(the per-host circuits). Every change is a compare-and-swap `UPDATE`, so two dispatchers never hold it together,
and a holder that dies frees it when `LEASE_TTL` passes. The row is registered by the migration
`overrides/0003_dispatcher_lease` and created again on first use when it is missing (a flushed test database).
Who starts dispatchers: the chain of successor tasks (`overrides.polling.dispatcher`), a qcluster's standby when
the lease is vacant (`overrides.polling.standby`), and the watchdog Schedule as the last resort
(`overrides.polling.watchdog`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from overrides.models import Lease

logger = logging.getLogger("overrides.polling.dispatcher")

LEASE = "dispatcher"  # the name of the dispatcher's `Lease` row
LEASE_TTL = timedelta(seconds=5)
HEARTBEAT = 1.0  # seconds between lease extensions

_FIELDS = ("holder", "expires_at", "successor", "state")


def ensure_lease(lease_model=None, name: str = LEASE) -> None:
    """Create the lease row unless it exists. `get_or_create` catches the `IntegrityError` of a concurrent creator
    (the name is unique) and reads that one's row instead."""
    (lease_model or Lease).objects.get_or_create(name=name)


class DispatcherLease:
    """"Only one dispatcher claims work at a time", as a `Lease` row with compare-and-swap updates.

    A holder extends the lease every `HEARTBEAT` seconds (`renew()`); a successor registers itself and waits; the
    holder, seeing it, hands the lease over directly (with its state) and stops claiming. A dispatcher that is not
    a successor (the watchdog's) takes the lease only when it is free or expired.
    """

    def __init__(self, token: str | None = None, ttl: timedelta = LEASE_TTL, name: str = LEASE) -> None:
        self.token = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.ttl = ttl
        self.name = name
        self.state: dict[str, Any] = {}
        self._extended = 0.0

    def _rows(self):
        return Lease.objects.filter(name=self.name)

    def _read(self) -> dict[str, Any] | None:
        row = self._rows().values(*_FIELDS).first()
        if row is None:  # a flushed test database, a deleted row: made again on first use
            ensure_lease(name=self.name)
            row = self._rows().values(*_FIELDS).first()
        return row

    def _take(self, state: Any) -> bool:
        self.state = state if isinstance(state, dict) else {}
        self._extended = time.monotonic()
        return True

    def acquire(self, *, wait_seconds: float, as_successor: bool) -> bool:
        """Take the lease: at once when free or expired; as a successor, wait up to `wait_seconds` for the holder
        to hand it over (False when a newer successor replaced this one). Not a successor (the watchdog's run):
        False as soon as the holder's heartbeat shows it alive, else take the lease when it expires."""
        deadline = time.monotonic() + wait_seconds
        registered = False
        expiry_seen = None
        while True:
            row = self._read()
            if row is None:  # deleted again between its creation and our read
                if time.monotonic() >= deadline:
                    return False
                continue
            now = timezone.now()
            if row["holder"] == self.token:  # handed over to this one
                return self._take(row["state"])
            if not row["holder"] or row["expires_at"] <= now:
                waiting = "" if row["successor"] in ("", self.token) else row["successor"]
                if self._rows().filter(holder=row["holder"], expires_at=row["expires_at"]).update(
                        holder=self.token, expires_at=now + self.ttl, successor=waiting, updated_at=now):
                    return self._take(row["state"])
                continue
            if not as_successor:
                # An alive holder extends its lease every HEARTBEAT; a dead one lets it expire within the TTL.
                if expiry_seen is not None and row["expires_at"] != expiry_seen or time.monotonic() >= deadline:
                    return False
                expiry_seen = row["expires_at"]
                time.sleep(0.1)
                continue
            if registered and row["successor"] != self.token:
                return False  # a newer successor took this one's place
            if not registered:
                registered = bool(self._rows().filter(successor=row["successor"]).update(
                    successor=self.token, updated_at=now))
                continue
            if time.monotonic() >= deadline:
                self._rows().filter(successor=self.token).update(successor="", updated_at=timezone.now())
                return False
            time.sleep(0.05)

    def renew(self, state: dict[str, Any]) -> str:
        """The holder's heartbeat: "held", "handover" (a successor got the lease and `state`), or "lost"."""
        row = self._read()
        if row is None or row["holder"] != self.token:
            return "lost"
        successor = row["successor"]
        if successor and successor != self.token:
            now = timezone.now()
            handed = self._rows().filter(holder=self.token, successor=successor).update(
                holder=successor, successor="", expires_at=now + self.ttl, state=state, updated_at=now)
            if handed:
                logger.debug("dispatcher %s handed the lease to %s", self.token, successor)
                return "handover"
        if time.monotonic() - self._extended >= HEARTBEAT:
            now = timezone.now()
            if not self._rows().filter(holder=self.token).update(expires_at=now + self.ttl, updated_at=now):
                return "lost"
            self._extended = time.monotonic()
        return "held"

    def release(self, state: dict[str, Any]) -> None:
        """Give the lease up (keeping `state` for the next holder); a waiting successor may take it at once."""
        now = timezone.now()
        self._rows().filter(holder=self.token).update(holder="", expires_at=now, state=state, updated_at=now)

    def holder(self) -> str:
        """The current holder's token while the lease is live, else ""."""
        row = self._read()
        if not row or not row["holder"] or row["expires_at"] <= timezone.now():
            return ""
        return row["holder"]


def dispatcher_running() -> bool:
    """Whether a dispatcher holds a live lease. It claims the rows made due now within a tick (`TICK`) and fans out
    new notification events within a second, so a task enqueued for either would only race it."""
    return bool(DispatcherLease().holder())
