"""Cheap rollout waits: one poller thread per process watches every waited row; a wait holds no thread.

`GET /api/v1/overrides/{name}/rollout/` is served by `rollout_view`, an async view. Everything a request needs
checked (token, permission, 404, parameters, the per-process and per-token limits) runs in the DRF action
`ModulePullOverrideViewSet.rollout`, called in a thread; the action decides at once when the row already says
something final (`overrides.api.rollout.evaluate`, unchanged), else it hands back a `Wait`. The view then awaits
the wait's future: under the ASGI server (`portal.asgi`, the shipped web server) that costs a coroutine, not a
thread; under a WSGI server it still blocks that request's thread, but shares the poller.

`RolloutPoller` reads all waited rows in one query per `POLL_INTERVAL` and re-evaluates only the waits whose row
changed since their last evaluation (every `REFRESH` seconds anyway), so 500 waits cost one query per tick, not
500. Limits: `PORTAL_ROLLOUT_MAX_WAITS` per process and `PORTAL_ROLLOUT_MAX_WAITS_PER_TOKEN` per token (or
session user) in one process, so one read-only token cannot hold every place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connection
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from overrides.api import rollout
from overrides.models import ModulePullOverride
from overrides.verdict import cluster_module_of
from portal import metrics

logger = logging.getLogger("overrides.api.rollout")

POLL_INTERVAL = rollout.POLL_INTERVAL
REFRESH = 10.0  # re-evaluate an unchanged row this often anyway (the outcome may also read other rows)


def _fingerprint(row: ModulePullOverride) -> tuple:
    """The row as it is, and when the read-back last rewrote its Module mirror (the verdict reads both)."""
    module = cluster_module_of(row)
    return (*(getattr(row, f.attname) for f in row._meta.concrete_fields), module.read_at if module else None)


@dataclass(eq=False)
class Wait:
    """One pipeline's wait: resolved with a final `rollout.Outcome` (or a timeout) through `future`."""

    pk: int
    requested: str | None
    started: float
    deadline: float
    holder: str
    last: rollout.Outcome
    fingerprint: tuple = ()
    evaluated: float = 0.0
    future: Future = field(default_factory=Future)

    def finish(self, outcome: rollout.Outcome) -> None:
        outcome.waited = round(time.monotonic() - self.started, 1)
        if not self.future.done():
            self.future.set_result(outcome)

    def time_out(self) -> None:
        outcome = self.last
        outcome.waited = round(time.monotonic() - self.started, 1)
        outcome.state = rollout.TIMEOUT
        outcome.detail = f"Timed out after {outcome.waited:g}s. {outcome.detail}"
        if not self.future.done():
            self.future.set_result(outcome)


class WaitPlaces:
    """How many waits this process holds, in all and per holder (token or user)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def take(self, holder: str) -> None:
        """Take a place for `holder` or raise DRF's Throttled (429 with Retry-After)."""
        total = settings.PORTAL_ROLLOUT_MAX_WAITS
        per_holder = settings.PORTAL_ROLLOUT_MAX_WAITS_PER_TOKEN
        with self._lock:
            if sum(self._held.values()) >= total:
                raise exceptions.Throttled(wait=5, detail="This server already holds its maximum of rollout waits.")
            if self._held.get(holder, 0) >= per_holder:
                raise exceptions.Throttled(wait=5, detail=f"This token already holds its maximum of {per_holder} "
                                                          "rollout waits on this server.")
            self._held[holder] = self._held.get(holder, 0) + 1
        metrics.ROLLOUT_WAITS.inc()

    def give_back(self, holder: str) -> None:
        with self._lock:
            left = self._held.get(holder, 0) - 1
            if left > 0:
                self._held[holder] = left
            else:
                self._held.pop(holder, None)
        metrics.ROLLOUT_WAITS.dec()

    def held(self, holder: str | None = None) -> int:
        with self._lock:
            return sum(self._held.values()) if holder is None else self._held.get(holder, 0)


class RolloutPoller:
    """The process's one poller thread (started with the first wait, ends when none is left)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: set[Wait] = set()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def add(self, wait: Wait) -> None:
        with self._lock:
            self._waits.add(wait)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rollout-poller", daemon=True)
                self._thread.start()

    def discard(self, wait: Wait) -> None:
        with self._lock:
            self._waits.discard(wait)

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    waits = [w for w in self._waits if not w.future.done()]
                    self._waits = set(waits)
                    if not waits:
                        self._thread = None
                        return
                try:
                    self.tick(waits)
                except Exception:  # a database outage: the waits go on (or time out) and the next tick retries
                    logger.exception("rollout poller: reading %s waited rows failed", len(waits))
                    close_old_connections()
                time.sleep(POLL_INTERVAL)
        finally:
            connection.close()

    def tick(self, waits: list[Wait]) -> None:
        """One query for every waited row; evaluate the waits whose row changed (or is due a refresh)."""
        self.ticks += 1
        rows = ModulePullOverride.all_objects.select_related("source", "cluster_module").in_bulk({w.pk for w in waits})
        now = time.monotonic()
        for wait in waits:
            row = rows.get(wait.pk)
            if row is None:  # gone from the database altogether
                wait.last.state, wait.last.detail = rollout.DELETED, "The override was deleted."
                wait.finish(wait.last)
                continue
            fingerprint = _fingerprint(row)
            if fingerprint != wait.fingerprint or now - wait.evaluated >= REFRESH:
                wait.fingerprint, wait.evaluated = fingerprint, now
                wait.last = rollout.evaluate(row, wait.requested)
                if wait.last.final:
                    wait.finish(wait.last)
                    continue
            if now >= wait.deadline:
                wait.time_out()


PLACES = WaitPlaces()
POLLER = RolloutPoller()


def holder_of(request) -> str:
    """Whom a wait counts against: the API token, else the signed-in user."""
    token = getattr(request, "auth", None)
    if getattr(token, "pk", None) is not None:
        return f"token:{token.pk}"
    return f"user:{getattr(request.user, 'pk', None)}"


def start_wait(request, override: ModulePullOverride, requested: str | None, timeout: float):
    """Evaluate now; a final outcome (or a zero timeout) is returned at once, else a registered `Wait` holding a
    place. Raises Throttled when no place is free. `timeout` was validated (`RolloutQuerySerializer`)."""
    outcome = rollout.evaluate(override, requested)
    if outcome.final:
        return outcome
    holder = holder_of(request)
    if timeout <= 0:
        outcome.state, outcome.detail = rollout.TIMEOUT, f"Timed out after 0s. {outcome.detail}"
        return outcome
    PLACES.take(holder)
    started = time.monotonic()
    wait = Wait(pk=override.pk, requested=requested, started=started, deadline=started + timeout, holder=holder,
                last=outcome, fingerprint=_fingerprint(override), evaluated=started)
    POLLER.add(wait)
    return wait


def end_wait(wait: Wait) -> None:
    POLLER.discard(wait)
    PLACES.give_back(wait.holder)


def async_front(admit):
    """The async front of the DRF `rollout` action `admit` (the viewset's view, handed in by the URLconf so this
    module need not import the views that import it): checks in a thread, the wait itself on the event loop."""

    @csrf_exempt
    async def rollout_view(request, name: str):
        response = await _in_thread(request, admit, request, name=name)
        wait = getattr(response, "rollout_wait", None)
        if wait is None:
            return response
        try:
            outcome = await asyncio.wrap_future(wait.future)
        finally:
            end_wait(wait)
        await _in_thread(request, _fill, response, outcome)
        return response

    return rollout_view


async def _in_thread(request, func, *args, **kwargs):
    """Run sync code for this request. Under ASGI in the shared executor, so that a waiting request keeps no thread
    of its own (Django would give it one for the whole request), with Django's connection hygiene around it; under
    WSGI in the request's own thread (its connection, and a test's transaction)."""
    if not isinstance(request, ASGIRequest):
        return await sync_to_async(func)(*args, **kwargs)

    def hygienic():
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return await sync_to_async(hygienic, thread_sensitive=False)()


def _fill(response, outcome: rollout.Outcome) -> None:
    from overrides.api.serializers import RolloutSerializer

    response.data = RolloutSerializer(outcome).data
    response.status_code = outcome.http_status
