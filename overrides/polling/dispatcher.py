"""The dispatcher: one long-running django-q2 task that starts every piece of periodic work on time.

django-q2 fires Schedules only about every 30 s, too coarse for 15 s (or 5 s) scan intervals. So a dispatcher
task holds the lease (`overrides.polling.lease.DispatcherLease`, a row of our `Lease` table) and, for
about `RUN_FOR` seconds, repeatedly:

- claims the overrides due within the next `HORIZON` (compare-and-swap on `next_check_at`, see
  `overrides.polling.claim_checks`), keeps them in a heap and starts each check at its due time in a bounded
  thread pool inside this worker (PORTAL_POLL_THREADS threads, at most PORTAL_POLL_HOST_CAP at once per registry
  host; a failing host makes its overrides wait, see `overrides.polling.circuits`); results are written back by
  this thread in small transactions. Measured with bench/poller.py on 2 cores and SQLite: a django-q2 task per
  check (an earlier design) used 1.4 cores at 1000 overrides / 15 s, checks 3.5 s late (p50; p99 5.1 s); the pool
  kept p99 under 20 ms at 3000 overrides with a third of a core;
- claims sources due for module discovery (every 3 minutes) and lists their modules in the same pool;
- every second: enqueues the expiry of overrides and the notification retries that are due
  (`overrides.expiry.dispatch_periodic_work`);
- when cluster sync is on: claims rows due for an apply (`overrides.cluster.sync.due_applies`) and enqueues
  `overrides.tasks.apply_override/apply_source` for each; enqueues `overrides.tasks.read_back_cluster` every
  `READ_BACK_EVERY`.

Then it enqueues its successor, hands the lease over when the successor starts (no gap, no overlap: claims are
atomic anyway), finishes the checks it claimed and returns, well inside django-q2's task timeout. A dispatcher
that dies loses nothing: the lease expires after `LEASE_TTL`, a qcluster's standby thread
(`overrides.polling.standby`) takes it over within about a second and dispatches (the minute watchdog Schedule is
the last resort), and each claim moved `next_check_at` forward by one interval only, so an unchecked override is
due again then.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from overrides import expiry
from overrides.cluster.state import cluster_enabled
from overrides.models import ModuleSource
from overrides.polling import auto_renew
from overrides.polling import checks as polling
from overrides.polling.circuits import HostCircuits, HostState, host_of
from overrides.polling.lease import DispatcherLease
from overrides.polling.watchdog import DISPATCHER_TASK
from portal import metrics
from registry.errors import DigestLookup, ErrorKind, ModuleListing, RegistryError

logger = logging.getLogger("overrides.polling.dispatcher")

RUN_FOR = 20.0  # seconds of claiming before the successor is enqueued
MAX_RUN = 45.0  # never claim longer than this (the drain that follows is bounded by registry timeouts)
MAX_WAIT = 10.0  # a successor waits this long for the lease at most (part of MAX_RUN)
TICK = 0.2  # seconds between claims
HORIZON = 1.0  # claim this far ahead, so every check is in the heap before it is due


FLUSH_EVERY = 0.02  # seconds between writes of check results (one transaction each)
READ_BACK_EVERY = timedelta(seconds=20)
READ_BACK_STALE = timedelta(seconds=90)  # a read-back task not finished by then is presumed lost
APPLY_EVERY = 1.0
SOURCES_REFRESH = 5.0


@dataclass
class DispatchReport:
    """What one dispatcher run did. `lateness`: seconds from each check's due time to its start."""

    ended: str = ""
    checks: int = 0
    changes: int = 0
    failures: int = 0
    deferred: int = 0
    discoveries: int = 0
    applies: int = 0
    read_backs: int = 0
    auto_renews: int = 0
    per_override: Counter = field(default_factory=Counter)
    lateness: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The small part kept as the django-q2 task result."""
        late = sorted(self.lateness)
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else None
        return {"ended": self.ended, "checks": self.checks, "changes": self.changes, "failures": self.failures,
                "deferred": self.deferred, "discoveries": self.discoveries, "applies": self.applies,
                "read_backs": self.read_backs, "auto_renews": self.auto_renews, "lateness_p99": p99}


@dataclass
class _Work:
    kind: str  # "check" | "discovery"
    claim: Any
    host: str
    at: float  # time.time() when due


class Dispatcher:
    """One dispatcher run; `run()` returns its report. Tests drive it directly with short intervals.

    Work moves from `_heap` (claimed, not yet due) to `_ready[host]` (due, waiting for a place within `host_cap`)
    to the pool; pool threads only talk to the registry and put their results on `_done`, which this thread
    writes back in one transaction per batch.
    """

    def __init__(self, *, lease: DispatcherLease | None, successor: bool = False, run_for: float | None = RUN_FOR,
                 max_run: float = MAX_RUN, tick: float = TICK, horizon: float = HORIZON, threads: int | None = None,
                 host_cap: int | None = None) -> None:
        self.lease, self.successor = lease, successor
        self.run_for, self.max_run, self.tick, self.horizon = run_for, max_run, tick, horizon
        # Settings PORTAL_POLL_THREADS and PORTAL_POLL_HOST_CAP (a hung registry holds at most that many threads).
        self.threads = threads or settings.PORTAL_POLL_THREADS
        self.host_cap = host_cap or settings.PORTAL_POLL_HOST_CAP
        self.report = DispatchReport()
        self.circuits = HostCircuits()
        self._heap: list[tuple[float, int, _Work]] = []
        self._seq = itertools.count()
        self._ready: dict[str, deque[_Work]] = {}
        self._busy: Counter = Counter()
        self._inflight = 0
        self._done: SimpleQueue = SimpleQueue()
        self._received: list[tuple[_Work, float, Any, datetime]] = []
        self._flushed = 0.0
        self._sources: dict[int, ModuleSource] = {}
        self._sources_stamp: dict[int, datetime] = {}
        self._sources_loaded = 0.0
        self._read_back_at: datetime | None = None
        self._read_back_task: tuple[str, datetime] | None = None

    # --- the loop --------------------------------------------------------------------------------------------

    def run(self) -> DispatchReport:
        started = time.monotonic()
        if self.lease is not None:
            # The holder hands over within a heartbeat; waiting longer only matters when it died (lease TTL).
            wait_for = min(MAX_WAIT, self.max_run / 2)
            if not self.lease.acquire(wait_seconds=wait_for, as_successor=self.successor):
                self.report.ended = "not needed" if not self.successor else "replaced"
                return self.report
            self._load_state(self.lease.state)
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="registry-check")
        claiming, chained = True, self.run_for is None
        next_claim = next_lease = next_apply = 0.0
        try:
            while True:
                mono = time.monotonic()
                if claiming and mono - started >= self.max_run:
                    claiming, self.report.ended = False, "deadline"
                if claiming and self.lease is not None and mono >= next_lease:
                    status = self.lease.renew(self._state())
                    next_lease = mono + 0.25
                    if status != "held":
                        claiming, self.report.ended = False, status
                if claiming and not chained and mono - started >= self.run_for:
                    chained = self._enqueue_successor()
                if claiming and mono >= next_claim:
                    next_claim = mono + self.tick
                    self._guarded("claiming due work", self._claim)
                    self._guarded("auto-renewing new digests", self._auto_renew)
                if claiming and mono >= next_apply:
                    next_apply = mono + APPLY_EVERY
                    self._guarded("dispatching the cluster loops", self._cluster_work)
                    self._guarded("dispatching expiries and notifications", expiry.dispatch_periodic_work)
                self._receive()
                self._release(pool)
                self._flush(force=not claiming)
                if not claiming and not self._heap and not self._ready and not self._inflight:
                    break
                self._wait(next_claim if claiming else None)
        finally:
            pool.shutdown(wait=True)
            self._receive()
            self._flush(force=True)
            if self.lease is not None and self.report.ended in ("deadline", ""):
                self.lease.release(self._state())
        return self.report

    def _guarded(self, what: str, step) -> None:
        """One step of the loop; a failure (a locked database, the cluster code) is logged and retried next time
        round instead of ending the run and its checks."""
        try:
            step()
        except Exception:
            logger.exception("dispatcher: %s failed; trying again", what)

    def _wait(self, next_claim: float | None) -> None:
        """Sleep until the next due work, the next claim, a result, or the next write of results."""
        wake = [self.tick]
        if self._heap:
            wake.append(self._heap[0][0] - time.time())
        if next_claim is not None:
            wake.append(next_claim - time.monotonic())
        if self._received:
            wake.append(self._flushed + FLUSH_EVERY - time.monotonic())
        try:
            result = self._done.get(timeout=max(0.0, min(wake)))
        except Empty:
            return
        self._take(result)

    def _enqueue_successor(self) -> bool:
        from django_q.conf import Conf
        from django_q.tasks import async_task

        if Conf.SYNC:  # tasks run inline: a successor would run inside this one
            return True
        async_task(DISPATCHER_TASK, True, group="dispatcher", q_options={"task_name": "dispatcher"})
        return True

    def _state(self) -> dict[str, Any]:
        read_back_task = None
        if self._read_back_task:
            read_back_task = [self._read_back_task[0], self._read_back_task[1].isoformat()]
        return {"hosts": self.circuits.dump(), "read_back_task": read_back_task,
                "read_back_at": self._read_back_at.isoformat() if self._read_back_at else None}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.circuits = HostCircuits.load(state.get("hosts"))
        try:
            self._read_back_at = datetime.fromisoformat(state["read_back_at"]) if state.get("read_back_at") else None
            task = state.get("read_back_task")
            self._read_back_task = (task[0], datetime.fromisoformat(task[1])) if task else None
        except (TypeError, ValueError, IndexError, KeyError):
            self._read_back_at = self._read_back_task = None

    # --- claims ----------------------------------------------------------------------------------------------

    def _source(self, pk: int) -> ModuleSource | None:
        mono = time.monotonic()
        if mono - self._sources_loaded >= SOURCES_REFRESH or pk not in self._sources:
            stamps = dict(ModuleSource.all_objects.values_list("pk", "updated_at"))
            stale = [p for p, stamp in stamps.items() if self._sources_stamp.get(p) != stamp]
            for source in ModuleSource.all_objects.filter(pk__in=stale):
                self._sources[source.pk], self._sources_stamp[source.pk] = source, source.updated_at
            for gone in set(self._sources) - set(stamps):
                self._sources.pop(gone, None)
            self._sources_loaded = mono
        return self._sources.get(pk)

    def _claim(self) -> None:
        now = timezone.now()
        for claim in polling.claim_checks(now=now, horizon=timedelta(seconds=self.horizon)):
            source = self._source(claim.source_id)
            if source is None:
                continue
            work = _Work("check", claim, host_of(source), claim.due.timestamp())
            heapq.heappush(self._heap, (work.at, next(self._seq), work))
        for claim in polling.claim_discoveries(now=now):
            source = self._source(claim.pk)
            if source is not None:
                work = _Work("discovery", claim, host_of(source), claim.due.timestamp())
                heapq.heappush(self._heap, (work.at, next(self._seq), work))

    def _auto_renew(self) -> None:
        """Renew the overrides whose new digest the cluster does not run yet (see overrides.polling.auto_renew)."""
        if cluster_enabled():
            self.report.auto_renews += auto_renew.renew_due(timezone.now())

    def _cluster_work(self) -> None:
        """Applies and the read-back: the cluster loops of `overrides.cluster.sync`, started from here."""
        if not cluster_enabled():
            return
        from django_q.tasks import async_task

        from overrides.cluster import sync

        for claim in sync.due_applies(timezone.now()):
            async_task(claim.task, claim.pk, group="apply", q_options={"task_name": f"apply {claim.model}"})
            self.report.applies += 1
        self._read_back()

    def _read_back(self) -> None:
        from django_q.models import Task
        from django_q.tasks import async_task

        now = timezone.now()
        if self._read_back_at is not None and now < self._read_back_at:
            return
        if self._read_back_task is not None:
            task_id, enqueued = self._read_back_task
            if now - enqueued < READ_BACK_STALE and not Task.objects.filter(id=task_id).exists():
                return  # the previous read-back still runs: a second one would only repeat it
        task_id = async_task("overrides.tasks.read_back_cluster", group="read-back",
                             q_options={"task_name": "read back cluster"})
        self._read_back_task = (str(task_id), now) if task_id else None
        self._read_back_at = now + READ_BACK_EVERY
        self.report.read_backs += 1

    # --- checks ----------------------------------------------------------------------------------------------

    def _release(self, pool: ThreadPoolExecutor) -> None:
        """Start the work that is due, host by host within `host_cap`; a backing-off host's checks are deferred."""
        now_ts = time.time()
        while self._heap and self._heap[0][0] <= now_ts:
            work = heapq.heappop(self._heap)[2]
            self._ready.setdefault(work.host, deque()).append(work)
        now = timezone.now()
        for host in list(self._ready):
            queue = self._ready[host]
            while queue and self._busy[host] < self.host_cap:
                gate = self.circuits.gate(host, now)
                if gate == "wait":
                    break  # held until the probe's answer
                if gate == "open":
                    self._defer(list(queue), self.circuits.hosts[host])
                    queue.clear()
                    break
                work = queue.popleft()
                source = self._sources.get(work.claim.source_id if work.kind == "check" else work.claim.pk)
                if source is None:  # deleted meanwhile; a lost claim is due again next interval
                    if gate == "probe":
                        self.circuits.hosts[host].probing = False
                    continue
                self._busy[host] += 1
                self._inflight += 1
                pool.submit(_perform, work, source, self._done)
            if not queue:
                del self._ready[host]

    def _defer(self, works: list[_Work], state: HostState) -> None:
        now = timezone.now()
        until = max(state.open_until or now, now)
        with transaction.atomic():
            for work in works:
                reason = (f"Not checked: the registry host {work.host} is failing ({state.message}); its checks "
                          f"wait until {until:%Y-%m-%d %H:%M:%S} UTC.")
                if work.kind == "check":
                    polling.defer_check(work.claim, until, reason)
                else:
                    ModuleSource.objects.filter(pk=work.claim.pk, next_discovery_at=work.claim.until).update(
                        next_discovery_at=max(until, work.claim.until))
        self.report.deferred += len(works)

    def _receive(self) -> None:
        while True:
            try:
                self._take(self._done.get_nowait())
            except Empty:
                return

    def _take(self, result: tuple[_Work, float, Any, datetime]) -> None:
        """A result is back: its host has a free place again, and its circuit learns from it at once."""
        work, _, lookup, finished = result
        self._busy[work.host] -= 1
        self._inflight -= 1
        self.circuits.record(work.host, lookup.error, finished)
        self._received.append(result)

    def _flush(self, force: bool = False) -> None:
        """Write the results received so far back, in one transaction every `FLUSH_EVERY` seconds at most."""
        if not self._received or (not force and time.monotonic() - self._flushed < FLUSH_EVERY):
            return
        batch, self._received = self._received, []
        self._flushed = time.monotonic()
        checks = [(work.claim, lookup, finished) for work, _, lookup, finished in batch if work.kind == "check"]
        try:
            with transaction.atomic():
                outcomes = polling.record_checks(checks)
                for work, _, lookup, finished in batch:
                    if work.kind == "discovery":
                        polling.record_discovery(work.claim.pk, lookup, at=finished)
                        self.report.discoveries += 1
        except DatabaseError:
            logger.exception("dispatcher: writing %s results failed; those rows are checked again next interval",
                             len(batch))
            return
        outcome_of = iter(outcomes)
        for work, started, _, _ in batch:
            if work.kind == "check":
                self.report.per_override[work.claim.pk] += 1
                self.report.lateness.append(started - work.at)
                metrics.check_recorded(next(outcome_of), work.host, started - work.at)
        self.report.checks += len(outcomes)
        self.report.changes += sum(1 for o in outcomes if o in ("first", "changed"))
        self.report.failures += outcomes.count("failed")


def _perform(work: _Work, source: ModuleSource, done: SimpleQueue) -> None:
    """In a pool thread: the registry request only (no database), bounded by the client's timeouts."""
    from registry import client as registry_client

    started = time.time()
    try:
        if work.kind == "check":
            result = polling.lookup(work.claim, source)
        else:
            result = registry_client.discover_modules(source)
    except Exception as exc:  # the client never raises; if it did, the loop must still get an answer back
        logger.exception("dispatcher: %s of %s raised", work.kind, work.claim.pk)
        error = RegistryError(ErrorKind.REGISTRY_ERROR, f"unexpected error: {type(exc).__name__}.")
        result = DigestLookup("", None, error) if work.kind == "check" else ModuleListing([], error)
    done.put((work, started, result, timezone.now()))


def run_dispatcher(successor: bool = False, **options: Any) -> dict[str, Any]:
    """The django-q2 task: one dispatcher run under the lease (see the module docstring)."""
    report = Dispatcher(lease=DispatcherLease(), successor=successor, **options).run()
    logger.debug("dispatcher run ended (%s): %s", report.ended, report.summary())
    return report.summary()
