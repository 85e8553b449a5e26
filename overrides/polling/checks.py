"""The portal's own registry view: digest checks, module discovery, and their backoff.

Every check reads `<source repo>/<module>:<tag>` with `registry.client.resolve_digest()` and writes the result as
bookkeeping (`queryset.update()`, no audit row): `registry_digest`, `registry_checked_at`, `registry_error`,
`check_failures`, `next_check_at`. A `DigestObservation(origin="registry")` is written the first time a digest is
seen and each time it changes, exactly once per change: `registry_digest` moves from the old value to the new one
in a compare-and-swap update and the observation is inserted only when that update matched, in one transaction.

Scheduling is a compare-and-swap on `next_check_at` (`claim_checks()`): a claim moves it from the due time to the
next due time (due + scanInterval, so the cadence does not drift with the check's duration), and only the worker
whose update matched checks the row. A claim whose worker died leaves the row due again one interval later.
`overrides.polling.dispatcher` drives the claims; `check_override(pk)` is the same check for one row on demand.

Failures back off exponentially per override (`cadence.failure_delay`: scanInterval, 2x, 4x, ...), honour the
registry's `Retry-After`, and show the reason in `registry_error`; the next success clears it. A registry host
that fails as a whole is held back by `overrides.polling.circuits` instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from overrides import enqueue
from overrides.models import DigestObservation, DigestOrigin, ModulePullOverride, ModuleSource
from overrides.notifications import events
from overrides.polling.cadence import DISCOVERY_INTERVAL, failure_delay, next_due, scan_interval_of
from portal import metrics
from registry import client as registry_client
from registry.auth import registry_host
from registry.errors import DigestLookup, ErrorKind, ModuleListing, RegistryError

logger = logging.getLogger("overrides.polling")

# --- claims ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedCheck:
    """An override claimed for one check: `due` is the `next_check_at` that was claimed and `until` what the claim
    moved it to; `digest` and `failures` are the row's values at the claim."""

    pk: int
    name: str
    image_tag: str
    source_id: int
    due: datetime
    until: datetime
    interval: timedelta
    digest: str
    failures: int


@dataclass(frozen=True)
class ClaimedDiscovery:
    pk: int
    due: datetime
    until: datetime


_CHECK_FIELDS = ("pk", "name", "image_tag", "source_id", "next_check_at", "scan_interval", "registry_digest",
                 "check_failures")


def _claim_row(manager, pk: int, column: str, seen: datetime | None, until: datetime) -> bool:
    """Compare-and-swap `column` from `seen` (the value read) to `until`: True for exactly one claimer."""
    return manager.filter(_same(pk, column, seen)).update(**{column: until}) == 1


def _same(pk: int, column: str, seen: datetime | None) -> Q:
    return Q(pk=pk, **({f"{column}__isnull": True} if seen is None else {column: seen}))


class _Contended(Exception):
    """Another claimer changed some of the rows between our read and our update."""


def _update_many(assignments: str, guard: str, params: list[tuple]) -> int:
    """`UPDATE <override table> SET <assignments> WHERE id = %s AND <guard>` once per params row, as one prepared
    statement (the ORM compiles each update anew: ten times the CPU at the dispatcher's rates). Returns the rows
    changed in total. Datetimes must be adapted with `_db_time`."""
    if not params:
        return 0
    table = connection.ops.quote_name(ModulePullOverride._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s AND {guard}", params)
        return cursor.rowcount


def _db_time(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _claim_rows(plans: list[tuple[int, datetime | None, datetime]]) -> None:
    """The compare-and-swap of many rows in one prepared statement; raises `_Contended` unless every row still held
    the value read (the caller's transaction then rolls back)."""
    plans = sorted(plans, key=lambda plan: plan[0])  # row locks in id order, like `lock_rows` (no deadlock)
    params = [(_db_time(until), pk, _db_time(seen)) for pk, seen, until in plans if seen is not None]
    never = [(pk, until) for pk, seen, until in plans if seen is None]
    moved = _update_many("next_check_at = %s", "next_check_at = %s", params)
    moved += sum(_claim_row(ModulePullOverride.objects, pk, "next_check_at", None, until) for pk, until in never)
    if moved != len(plans):
        raise _Contended


def _after_missed_slots(when: datetime, interval: timedelta, now: datetime) -> tuple[datetime, datetime]:
    """(due, until) of a claim. A late row (a dispatcher outage, missed slots or not) is checked at once; but when
    its next slot is under a second away (and half an interval) that slot's check serves instead, so the row is
    not checked twice within a moment (seen after a fail-over: a check late by most of an interval, then the next
    slot's check 80 ms later)."""
    until = next_due(when, interval, now)
    if when < now and until - now < min(interval / 2, timedelta(seconds=1)):
        return until, until + interval
    return when, until


def claim_checks(*, now: datetime | None = None, horizon: timedelta = timedelta(0),
                 limit: int = 500) -> list[ClaimedCheck]:
    """Claim the live overrides due by `now + horizon` (or never scheduled), earliest first, at most `limit`.

    Read and compare-and-swap in one transaction, in bulk; if any row was claimed by someone else meanwhile (the
    bulk update matched fewer rows), it is rolled back and redone row by row, so each row goes to exactly one
    claimer per due time. (On SQLite the transaction holds the write lock from its start: the bulk path always
    wins there.)
    """
    now = now or timezone.now()
    due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=now + horizon)
    rows = ModulePullOverride.objects.filter(due).order_by(F("next_check_at").asc(nulls_first=True), "pk")
    for bulk in (True, False):
        try:
            with transaction.atomic():
                plans = []
                for row in rows.values(*_CHECK_FIELDS)[:limit]:
                    interval = scan_interval_of(row["scan_interval"])
                    when = row["next_check_at"] or now
                    plans.append((row, interval, *_after_missed_slots(when, interval, now)))
                if bulk:
                    _claim_rows([(row["pk"], row["next_check_at"], until) for row, _, _, until in plans])
                else:
                    plans = [p for p in sorted(plans, key=lambda p: p[0]["pk"]) if _claim_row(
                        ModulePullOverride.objects, p[0]["pk"], "next_check_at", p[0]["next_check_at"], p[3])]
        except _Contended:
            continue
        break
    return [ClaimedCheck(pk=row["pk"], name=row["name"], image_tag=row["image_tag"], source_id=row["source_id"],
                         due=when, until=until, interval=interval, digest=row["registry_digest"],
                         failures=row["check_failures"]) for row, interval, when, until in plans]


def claim_override(pk: int, *, only_if_due: bool, now: datetime | None = None) -> ClaimedCheck | None:
    """Claim one override for a check now. `only_if_due`: only when it is due (the dispatcher or another task may
    have checked it since it became due: then None), else whatever its schedule says (a forced check)."""
    now = now or timezone.now()
    row = ModulePullOverride.objects.filter(pk=pk).values(*_CHECK_FIELDS).first()
    if row is None:
        return None
    current = row["next_check_at"]
    if only_if_due and current is not None and current > now:
        return None
    interval = scan_interval_of(row["scan_interval"])
    due = current if current is not None and current <= now else now
    until = next_due(due, interval, now)
    if not _claim_row(ModulePullOverride.objects, pk, "next_check_at", current, until) and only_if_due:
        return None
    return ClaimedCheck(pk=pk, name=row["name"], image_tag=row["image_tag"], source_id=row["source_id"], due=due,
                        until=until, interval=interval, digest=row["registry_digest"], failures=row["check_failures"])


def claim_discoveries(*, now: datetime | None = None, limit: int = 50) -> list[ClaimedDiscovery]:
    """Claim the live sources whose modules are due to be listed again (every `DISCOVERY_INTERVAL`)."""
    now = now or timezone.now()
    rows = ModuleSource.objects.filter(Q(next_discovery_at__isnull=True) | Q(next_discovery_at__lte=now))
    claimed: list[ClaimedDiscovery] = []
    with transaction.atomic():
        for pk, when in rows.order_by(F("next_discovery_at").asc(nulls_first=True), "pk").values_list(
                "pk", "next_discovery_at")[:limit]:
            until = next_due(when or now, DISCOVERY_INTERVAL, now)
            if _claim_row(ModuleSource.objects, pk, "next_discovery_at", when, until):
                claimed.append(ClaimedDiscovery(pk=pk, due=when or now, until=until))
    return claimed


# --- checks ------------------------------------------------------------------------------------------------


def lookup(claim: ClaimedCheck, source: ModuleSource) -> DigestLookup:
    """The registry part of a check (no database access: safe in a worker thread)."""
    return registry_client.resolve_digest(source, claim.name, claim.image_tag)


def lock_rows(pks: list[int]) -> None:
    """Lock these overrides' rows for the rest of the transaction, in id order (PostgreSQL; SQLite locks the whole
    database anyway). Every multi-row writer of the poller takes its row locks in id order, so a claim and a
    write of results over the same rows wait for each other instead of deadlocking (PostgreSQL then aborts one,
    and an aborted write loses checks that were made)."""
    if connection.features.has_select_for_update and pks:
        list(ModulePullOverride.all_objects.filter(pk__in=pks).order_by("pk").select_for_update(no_key=True)
             .values_list("pk", flat=True))


def record_checks(results: list[tuple[ClaimedCheck, DigestLookup, datetime]]) -> list[str]:
    """`record_check` for a batch (the dispatcher's): the usual case, an unchanged digest, is one UPDATE for all
    of them; changes and failures go row by row. Call inside a transaction. Row locks are taken in id order (that
    one UPDATE goes in id order; with changes or failures in the batch all its rows are locked first: `lock_rows`)."""
    same = sorted(((c, r, at) for c, r, at in results if r.ok and r.digest == c.digest), key=lambda s: s[0].pk)
    if len(same) < len(results):  # the row-by-row writes below would lock out of id order
        lock_rows(sorted({claim.pk for claim, _, _ in results}))
    _update_many("registry_checked_at = %s, registry_error = '', check_failures = 0",
                 "image_tag = %s AND source_id = %s AND deleted_at IS NULL",
                 [(_db_time(at), c.pk, c.image_tag, c.source_id) for c, _, at in same])
    outcomes = []
    for claim, result, at in results:
        if result.ok and result.digest == claim.digest:
            outcomes.append("same")
            continue
        with transaction.atomic():
            outcomes.append(record_check(claim, result, at=at))
    return outcomes


def record_check(claim: ClaimedCheck, result: DigestLookup, *, at: datetime | None = None) -> str:
    """Write a check's result; returns `first`, `changed`, `same`, `failed`, or `stale` (the override was deleted
    or now points at another image: the result is dropped)."""
    at = at or timezone.now()
    live = ModulePullOverride.objects.filter(pk=claim.pk, image_tag=claim.image_tag, source_id=claim.source_id)
    if not result.ok:
        return _record_failure(claim, live, result.error or RegistryError(ErrorKind.REGISTRY_ERROR, "no digest"), at)
    healthy = {"registry_checked_at": at, "registry_error": "", "check_failures": 0}
    digest, old = result.digest, claim.digest
    for _ in range(3):
        if old == digest:
            return "same" if live.update(**healthy) else "stale"
        with transaction.atomic():
            # A changed digest marks the row for an auto-renew (decided by overrides.polling.auto_renew).
            marks = {"auto_renew_at": at} if old else {}
            if live.filter(registry_digest=old).update(registry_digest=digest, **healthy, **marks):
                DigestObservation.objects.create(
                    override_id=claim.pk, digest=digest, previous_digest=old, image_ref=result.reference,
                    origin=DigestOrigin.REGISTRY, observed_at=at)
                logger.info("override %s: %s is now %s (was %s)", claim.name, result.reference, digest, old or "-")
                metrics.DIGEST_CHANGES.labels("registry").inc()
                events.emit_build_detected(claim.pk, name=claim.name, digest=digest, previous=old,
                                           reference=result.reference)
                return "changed" if old else "first"
        # Someone else recorded a digest meanwhile: compare with theirs (theirs may be this very one).
        current = live.values_list("registry_digest", flat=True).first()
        if current is None:
            return "stale"
        old = current
    return "stale"


def _record_failure(claim: ClaimedCheck, live, error: RegistryError, at: datetime) -> str:
    failures = claim.failures + 1
    metrics.REGISTRY_ERRORS.labels(str(error.kind)).inc()
    retry_at = at + failure_delay(claim.interval, failures, error.retry_after, at)
    message = error.message[:2000]
    with transaction.atomic():
        if not live.update(registry_checked_at=at, registry_error=message, check_failures=F("check_failures") + 1):
            return "stale"
        if retry_at > claim.until:
            # Only the schedule this claim set is pushed back: a renew or a new tag meanwhile wins.
            live.filter(next_check_at=claim.until).update(next_check_at=retry_at)
    logger.info("override %s: check failed (%s in a row, next at %s): %s", claim.name, failures,
                retry_at.isoformat(timespec="seconds"), message)
    return "failed"


def defer_check(claim: ClaimedCheck, until: datetime, reason: str) -> None:
    """Not checked because its registry host is backing off: wait for the host's retry time, say why."""
    live = ModulePullOverride.objects.filter(pk=claim.pk, image_tag=claim.image_tag, source_id=claim.source_id)
    live.update(registry_error=reason[:2000])
    if until > claim.until:
        live.filter(next_check_at=claim.until).update(next_check_at=until)


def check_override(pk: int, *, only_if_due: bool = False) -> str | None:
    """Check one override's digest now and record it (see `record_check` for the result words).

    `only_if_due=True` is the form tasks use after a renew, a new tag or a webhook set `next_check_at` to now:
    it claims the row like the dispatcher does, so whichever of them comes first checks it and the other does
    nothing (None). Returns None too for a deleted or missing override.
    """
    claim = claim_override(pk, only_if_due=only_if_due)
    if claim is None:
        return None
    source = ModuleSource.all_objects.filter(pk=claim.source_id).first()
    if source is None:
        return None
    outcome = record_check(claim, lookup(claim, source), at=None)
    metrics.check_recorded(outcome, registry_host(source.repo or ""))
    return outcome


def request_checks(pks: list[int]) -> int:
    """Make overrides due now (a registry push names their image) and enqueue their checks after commit; the
    dispatcher or the task, whichever claims first, checks each once. Returns how many were live."""
    pks = list(ModulePullOverride.objects.filter(pk__in=pks).values_list("pk", flat=True))
    if not pks:
        return 0
    ModulePullOverride.objects.filter(pk__in=pks).update(next_check_at=timezone.now())
    enqueue.enqueue_checks(pks)
    return len(pks)


# --- discovery ---------------------------------------------------------------------------------------------


def record_discovery(pk: int, listing: ModuleListing, *, at: datetime | None = None) -> str:
    """Keep the modules a source offers; a failure keeps the last list and says why in `discovery_error`."""
    at = at or timezone.now()
    rows = ModuleSource.objects.filter(pk=pk)
    if listing.ok:
        rows.update(discovered_modules=listing.modules, discovered_at=at, discovery_error="")
        return "ok"
    message = listing.error.message if listing.error else "module discovery failed"
    rows.update(discovery_error=message[:2000])
    logger.info("source %s: module discovery failed: %s", pk, message)
    return "failed"


def discover_source(pk: int, *, only_if_due: bool = False) -> str | None:
    """List a source's modules now (on demand, or as the task enqueued after a new repo). `only_if_due` skips a
    source whose discovery is not due (the dispatcher did it meanwhile). None: deleted, missing or skipped."""
    now = timezone.now()
    source = ModuleSource.objects.filter(pk=pk).first()
    if source is None:
        return None
    current = source.next_discovery_at
    if only_if_due and current is not None and current > now:
        return None
    claimed = _claim_row(ModuleSource.objects, pk, "next_discovery_at", current, now + DISCOVERY_INTERVAL)
    if not claimed and only_if_due:
        return None
    return record_discovery(pk, registry_client.discover_modules(source), at=None)
