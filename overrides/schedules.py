"""The django-q2 Schedule rows the poller needs, and the dispatcher lease kept beside them.

django-q2 looks at its Schedules only about every 30 s and a `MINUTES` schedule fires at most once a minute
(croniter, needed for cron schedules, is not installed), so a Schedule cannot drive 15 s cadences by itself.
Instead (see `overrides.dispatcher`):

- `WATCHDOG` fires `overrides.tasks.run_dispatcher` every minute. A dispatcher holds the lease, claims due work
  for about `RUN_FOR` seconds and then enqueues its own successor, which takes the lease over from it without a
  gap. The watchdog's run finds a live holder and returns at once; it matters only when the chain broke (a worker
  died, the queue was purged), and then the next minute starts a new one.
- `LEASE` is a row in the same table that never fires (`repeats=0`): `task` holds the holder's token, `next_run`
  the lease's expiry, `args` the token of a successor waiting for it, `kwargs` the state handed from one holder to
  the next (JSON). Every change is a compare-and-swap `UPDATE`, so two dispatchers never hold it together, and a
  holder that dies frees it when `LEASE_TTL` passes. Keeping it in django-q2's table needs no schema of our own.

The rows are created by the migration `overrides/0002_poller_schedules` and again by `ensure_schedules()` (used by
the tests after a flush, and safe to call any time).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

logger = logging.getLogger("overrides.dispatcher")

DISPATCHER_TASK = "overrides.tasks.run_dispatcher"
WATCHDOG = "mpo-portal: dispatcher watchdog"
LEASE = "mpo-portal: dispatcher lease (bookkeeping, never runs)"
LEASE_TTL = timedelta(seconds=5)
HEARTBEAT = 1.0  # seconds between lease extensions


def ensure_schedules(schedule_model=None) -> None:
    """Create (or repair) the watchdog schedule and the lease row. `schedule_model` is the historical model in a
    migration; django-q2's `Schedule` otherwise."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    minutes = schedule_model.MINUTES if hasattr(schedule_model, "MINUTES") else "I"
    once = schedule_model.ONCE if hasattr(schedule_model, "ONCE") else "O"
    schedule_model.objects.update_or_create(
        name=WATCHDOG,
        defaults={"func": DISPATCHER_TASK, "schedule_type": minutes, "minutes": 1, "repeats": -1, "args": None,
                  "kwargs": None},
    )
    if not schedule_model.objects.filter(name=LEASE).exists():
        schedule_model.objects.create(name=LEASE, func=DISPATCHER_TASK, schedule_type=once, repeats=0, task="",
                                      args="", kwargs="{}", next_run=timezone.now())


def _lease_rows():
    from django_q.models import Schedule

    rows = Schedule.objects.filter(name=LEASE).order_by("pk")
    if not rows.exists():
        ensure_schedules()
    first = rows.values_list("pk", flat=True).first()
    return Schedule.objects.filter(pk=first)


class DispatcherLease:
    """"Only one dispatcher claims work at a time", as a lease row with compare-and-swap updates.

    A holder extends the lease every `HEARTBEAT` seconds (`renew()`); a successor registers itself and waits; the
    holder, seeing it, hands the lease over directly (with its state) and stops claiming. A dispatcher that is not
    a successor (the watchdog's) takes the lease only when it is free or expired.
    """

    def __init__(self, token: str | None = None, ttl: timedelta = LEASE_TTL) -> None:
        self.token = token or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.ttl = ttl
        self.state: dict[str, Any] = {}
        self._extended = 0.0

    def _read(self) -> tuple[Any, dict[str, Any] | None]:
        rows = _lease_rows()
        return rows, rows.values("task", "next_run", "args", "kwargs").first()

    def _load_state(self, raw: str | None) -> None:
        try:
            state = json.loads(raw or "{}")
        except (TypeError, ValueError):
            state = {}
        self.state = state if isinstance(state, dict) else {}

    def acquire(self, *, wait_seconds: float, as_successor: bool) -> bool:
        """Take the lease: at once when free or expired; as a successor, wait up to `wait_seconds` for the holder
        to hand it over (False when a newer successor replaced this one). Not a successor (the watchdog's run):
        False as soon as the holder's heartbeat shows it alive, else take the lease when it expires."""
        deadline = time.monotonic() + wait_seconds
        registered = False
        expiry_seen = None
        while True:
            rows, row = self._read()
            if row is None:  # the row was deleted under us (a test flush, the admin): it is recreated next read
                if time.monotonic() >= deadline:
                    return False
                continue
            now = timezone.now()
            if row["task"] == self.token:
                self._load_state(row["kwargs"])
                self._extended = time.monotonic()
                return True
            if not row["task"] or row["next_run"] is None or row["next_run"] <= now:
                waiting = "" if row["args"] in ("", None, self.token) else row["args"]
                if rows.filter(task=row["task"], next_run=row["next_run"]).update(
                        task=self.token, next_run=now + self.ttl, args=waiting):
                    self._load_state(row["kwargs"])
                    self._extended = time.monotonic()
                    return True
                continue
            if not as_successor:
                # An alive holder extends its lease every HEARTBEAT; a dead one lets it expire within the TTL.
                if expiry_seen is not None and row["next_run"] != expiry_seen or time.monotonic() >= deadline:
                    return False
                expiry_seen = row["next_run"]
                time.sleep(0.1)
                continue
            if registered and row["args"] != self.token:
                return False  # a newer successor took this one's place
            if not registered:
                registered = bool(rows.filter(args=row["args"]).update(args=self.token))
                continue
            if time.monotonic() >= deadline:
                rows.filter(args=self.token).update(args="")
                return False
            time.sleep(0.05)

    def renew(self, state: dict[str, Any]) -> str:
        """The holder's heartbeat: "held", "handover" (a successor got the lease and `state`), or "lost"."""
        rows, row = self._read()
        if row is None or row["task"] != self.token:
            return "lost"
        successor = row["args"] or ""
        if successor and successor != self.token:
            handed = rows.filter(task=self.token, args=successor).update(
                task=successor, args="", next_run=timezone.now() + self.ttl, kwargs=json.dumps(state))
            if handed:
                logger.debug("dispatcher %s handed the lease to %s", self.token, successor)
                return "handover"
        if time.monotonic() - self._extended >= HEARTBEAT:
            if not rows.filter(task=self.token).update(next_run=timezone.now() + self.ttl):
                return "lost"
            self._extended = time.monotonic()
        return "held"

    def release(self, state: dict[str, Any]) -> None:
        """Give the lease up (keeping `state` for the next holder); a waiting successor may take it at once."""
        rows, _ = self._read()
        rows.filter(task=self.token).update(task="", next_run=timezone.now(), kwargs=json.dumps(state))

    def holder(self) -> str:
        """The current holder's token while the lease is live, else ""."""
        _, row = self._read()
        if not row or not row["task"] or row["next_run"] is None or row["next_run"] <= timezone.now():
            return ""
        return row["task"]
