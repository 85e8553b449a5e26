"""Portal -> cluster: make each custom resource match its row, level-triggered (design.md, "Apply").

`apply_override(pk)` / `apply_source(pk)` read the row as it is *now*: a deleted row deletes its custom resource
(already gone is fine), any other is created, or merge-patched (spec, the portal's managed-by label, the renew
annotations) with the resourceVersion it was read at, re-read and re-applied on a 409. They never write
`status`, finalizers or the controller's `modules.deckhouse.io/*` metadata, except the forced-renew annotation.
Then the row is marked `synced` with `applied_version` = the `spec_version` read at the start, only if that did
not move meanwhile; a newer change stays pending for its own run. Failures leave the row `pending` (transient) or
`error` (a 422/403/401/400 or a broken config at once; anything else after `ERROR_AFTER_ATTEMPTS`), with the
reason in words and `next_sync_at` pushed back (2 s doubling, at most 5 minutes). All of this is bookkeeping,
written with `queryset.update()` and kept out of the audit trail.

`due_applies()` claims the rows that are due for the dispatcher; `apply_due()` claims and applies inline.
The read-back (cluster -> portal) lives in `overrides.cluster.readback` and is re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from overrides.cluster import client as cluster
from overrides.cluster.client import MPO, MS, ClusterError
from overrides.cluster.readback import ReadBackSummary, read_back
from overrides.cluster.state import cluster_enabled
from overrides.models import BUILTIN_SOURCE, ModulePullOverride, ModuleSource, SyncState
from overrides.polling.cadence import doubling
from portal import metrics

__all__ = [
    "ApplyOutcome", "ClaimedApply", "ReadBackSummary", "apply_due", "apply_override", "apply_source", "backoff",
    "due_applies", "read_back",
]

logger = logging.getLogger("overrides.cluster.sync")

BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(minutes=5)
ERROR_AFTER_ATTEMPTS = 5
CLAIM_LEASE = timedelta(seconds=90)  # longer than a django-q2 task may run (Q_CLUSTER timeout 60 s)
CONFLICT_RETRIES = 3
SOURCE_REMOVABLE = ("spec.registry.dockerCfg", "spec.registry.ca", "spec.releaseChannel")


@dataclass(frozen=True)
class ApplyOutcome:
    """What one apply did. `result`: synced | unchanged | stale (the row changed meanwhile: left pending) |
    pending | error (failed; see `message`) | off | skipped (the deckhouse source) | missing (no such row)."""

    model: str
    pk: int
    name: str
    result: str
    message: str = ""


@dataclass(frozen=True)
class ClaimedApply:
    """A row claimed by `due_applies()`: enqueue `task` with `pk`."""

    model: str  # "override" | "source"
    pk: int

    @property
    def task(self) -> str:
        return f"overrides.tasks.apply_{self.model}"


def backoff(attempts: int) -> timedelta:
    """Delay before attempt `attempts + 1`: 2 s, 4 s, 8 s, ... at most 5 minutes."""
    return doubling(BACKOFF_BASE, attempts, BACKOFF_CAP)


def _words(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


# --- apply -----------------------------------------------------------------------------------------


def apply_override(pk: int) -> ApplyOutcome:
    """Make the ModulePullOverride in the cluster match override `pk` as it is now (see the module docstring)."""
    row = ModulePullOverride.all_objects.select_related("source").filter(pk=pk).first()
    if row is None:
        return ApplyOutcome("override", pk, "", "missing")
    return _apply(row, "override", _write_override)


def apply_source(pk: int) -> ApplyOutcome:
    """Make the ModuleSource in the cluster match source `pk`; the `deckhouse` source is never written."""
    row = ModuleSource.all_objects.filter(pk=pk).first()
    if row is None:
        return ApplyOutcome("source", pk, "", "missing")
    if row.is_builtin:
        ModuleSource.all_objects.filter(pk=pk, spec_version=row.spec_version).update(
            sync_state=SyncState.SYNCED, applied_version=row.spec_version, next_sync_at=None, sync_attempts=0,
            sync_message="Created and managed by Deckhouse; the portal never writes it.")
        return ApplyOutcome("source", pk, row.name, "skipped")
    return _apply(row, "source", _write_source)


def _apply(row, model: str, write: Callable[[Any], tuple[dict | None, str]]) -> ApplyOutcome:
    if not cluster_enabled():
        return ApplyOutcome(model, row.pk, row.name, "off")
    if row.sync_state == SyncState.SYNCED and row.applied_version == row.spec_version:
        return ApplyOutcome(model, row.pk, row.name, "unchanged")
    version = row.spec_version
    try:
        cr, message = write(row)
    except ClusterError as exc:
        if exc.kind == "off":
            return ApplyOutcome(model, row.pk, row.name, "off")
        if isinstance(row, ModuleSource):
            exc = exc.redacted([row.docker_cfg])
        return metrics.applied(_record_failure(row, model, version, exc))
    return metrics.applied(_record_success(row, model, version, cr, message))


def _record_success(row, model: str, version: int, cr: dict | None, message: str) -> ApplyOutcome:
    now = timezone.now()
    meta = (cr or {}).get("metadata") or {}
    seen: dict[str, Any] = {"cluster_seen_at": now}
    if cr is not None:
        # A deleted row keeps the uid of its last CR, so a terminating copy is never mistaken for a new one.
        seen.update(cluster_uid=meta.get("uid", ""), cluster_resource_version=meta.get("resourceVersion", ""))
    done = {"sync_state": SyncState.SYNCED, "applied_version": version, "sync_message": message, "synced_at": now,
            "sync_attempts": 0, "next_sync_at": None, **seen}
    if cr is not None:
        done["managed"] = True  # an imported CR edited in the portal now carries the portal's label
    manager = type(row).all_objects
    if manager.filter(pk=row.pk, spec_version=version).update(**done):
        logger.info("%s %s applied (version %s): %s", model, row.name, version, message)
        return ApplyOutcome(model, row.pk, row.name, "synced", message)
    manager.filter(pk=row.pk).update(**seen)
    return ApplyOutcome(model, row.pk, row.name, "stale", "Changed again while being applied; left pending.")


def _record_failure(row, model: str, version: int, exc: ClusterError) -> ApplyOutcome:
    attempts = row.sync_attempts + 1
    delay = backoff(attempts)
    state = SyncState.ERROR if not exc.transient or attempts >= ERROR_AFTER_ATTEMPTS else SyncState.PENDING
    message = f"{exc.message}; will retry in {_words(delay)}"
    type(row).all_objects.filter(pk=row.pk, spec_version=version).update(
        sync_state=state, sync_message=message[:2000], sync_attempts=attempts, next_sync_at=timezone.now() + delay)
    logger.warning("%s %s not applied (attempt %s): %s", model, row.name, attempts, message)
    return ApplyOutcome(model, row.pk, row.name, str(state), message)


def _renew_due(row: ModulePullOverride) -> bool:
    """A renew is written by the first successful apply after it was asked for, not by every later edit (the
    controller removes `renew` after a redeploy; writing it back would ask again)."""
    return row.renew_requested_at is not None and (row.synced_at is None or row.renew_requested_at > row.synced_at)


def _write_override(row: ModulePullOverride) -> tuple[dict | None, str]:
    if row.is_deleted:
        gone = cluster.with_mpo_version(lambda version: cluster.delete_object(MPO, version, row.name))
        return None, "Deleted from the cluster." if gone else "Already gone from the cluster."
    renew = _renew_due(row)

    def upsert(version: str) -> dict:
        return _upsert(MPO, version, cluster.override_body(row, version, renew=renew))

    cr = cluster.with_mpo_version(upsert)
    if renew and row.renew_force:
        # Forced once, with this renew: a later edit of the spec must not force a redeploy again.
        ModulePullOverride.all_objects.filter(
            pk=row.pk, renew_force=True, renew_requested_at=row.renew_requested_at).update(renew_force=False)
    version = (cr.get("apiVersion") or "").rsplit("/", 1)[-1]
    return cr, f"Applied to the cluster (ModulePullOverride {version})." + (" Renew requested." if renew else "")


def _write_source(row: ModuleSource) -> tuple[dict | None, str]:
    if row.is_deleted:
        gone = cluster.delete_object(MS, cluster.MS_VERSION, row.name)
        return None, "Deleted from the cluster." if gone else "Already gone from the cluster."
    cr = _upsert(MS, cluster.MS_VERSION, cluster.source_body(row), removable=SOURCE_REMOVABLE)
    return cr, "Applied to the cluster (ModuleSource)."


def _upsert(resource: cluster.Resource, version: str, desired: dict, removable: tuple[str, ...] = ()) -> dict:
    """Create the CR, or merge-patch what the portal owns in it; a 409 means read again and re-apply."""
    name = desired["metadata"]["name"]
    for _ in range(CONFLICT_RETRIES):
        current = cluster.get_object(resource, version, name)
        if current is None:
            try:
                return cluster.create_object(resource, version, desired)
            except ClusterError as exc:
                if exc.kind == "conflict":  # created by someone else meanwhile: patch it instead
                    continue
                raise
        meta = current.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            raise ClusterError("conflict", f'{resource.kind} "{name}" is being deleted in the cluster (waiting for '
                                           "its finalizers); it will be created again once it is gone")
        owned = {"metadata": {k: v for k, v in desired["metadata"].items() if k != "name"}, "spec": desired["spec"]}
        patch = cluster.merge_patch_for(owned, current, removable)
        if not patch:
            return current
        patch.setdefault("metadata", {})["resourceVersion"] = meta.get("resourceVersion")
        try:
            return cluster.patch_object(resource, version, name, patch)
        except ClusterError as exc:
            if exc.kind not in ("conflict", "not_found"):
                raise
    raise ClusterError("conflict", f'{resource.kind} "{name}" kept changing in the cluster '
                                   f"({CONFLICT_RETRIES} conflicts in a row)")


# --- the sweep -------------------------------------------------------------------------------------


def due_applies(now: datetime | None = None, limit: int = 100) -> list[ClaimedApply]:
    """Claim up to `limit` rows due for an apply; the dispatcher enqueues `claim.task` with `claim.pk` for each.

    Due: `sync_state` pending or error (or off with an unapplied change, once a cluster is configured) and
    `next_sync_at` empty or <= `now`. Each row is claimed by moving `next_sync_at` to `now + CLAIM_LEASE` in a
    compare-and-swap update, so two dispatchers never claim one row; the apply then sets `next_sync_at` (None
    when synced, the backoff when failed), and a claim whose worker died expires with its lease. Sources come
    first. Returns [] when cluster sync is off. The `deckhouse` source is never claimed.
    """
    if not cluster_enabled():
        return []
    now = now or timezone.now()
    lease = now + CLAIM_LEASE
    wanted = Q(sync_state__in=[SyncState.PENDING, SyncState.ERROR]) | Q(
        sync_state=SyncState.OFF, applied_version__lt=F("spec_version"))
    claimed: list[ClaimedApply] = []
    for model, manager in (("source", ModuleSource.all_objects), ("override", ModulePullOverride.all_objects)):
        due = manager.filter(wanted).filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))
        if model == "source":
            due = due.exclude(name=BUILTIN_SOURCE)
        for pk, when in due.order_by(F("next_sync_at").asc(nulls_first=True), "pk").values_list(
                "pk", "next_sync_at")[: max(limit - len(claimed), 0)]:
            row = manager.filter(pk=pk)
            row = row.filter(next_sync_at__isnull=True) if when is None else row.filter(next_sync_at=when)
            if row.update(next_sync_at=lease):
                claimed.append(ClaimedApply(model, pk))
    return claimed


def apply_due(now: datetime | None = None, limit: int = 100) -> list[ApplyOutcome]:
    """Claim the due rows and apply them here and now (tests, commands); returns what each apply did."""
    return [apply_override(c.pk) if c.model == "override" else apply_source(c.pk) for c in due_applies(now, limit)]
