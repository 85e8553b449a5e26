"""Cluster -> portal: list every ModuleSource and ModulePullOverride and bring the rows in line (design.md).

- Status is mirrored into the rows as bookkeeping (`queryset.update()`, no audit). A ModuleSource's modules are
  normalized from both status shapes (the seed era's `modules[]` + `moduleErrors[]`, and the newer `modules[]`
  with `version/checksum/pullError/error`). A ModulePullOverride's `status.imageDigest` adds a
  `DigestObservation(origin="cluster")` each time it changes, once per change.
- A CR the portal lacks is imported (unmanaged, synced). A v1alpha2 MPO names no source: it goes to the source
  whose status lists the module, else to the only source; otherwise it is left out with a line in the summary.
- A spec changed in the cluster behind a synced row (resourceVersion moved) is taken over; while the row has a
  change of its own pending, the portal's change wins. A synced row whose CR is gone is marked deleted.
- Rows applied after the listing started are left alone this round, so a listing older than an apply is never
  mistaken for drift or for a deletion.
- In the same pass, the Modules and ModuleConfigs of the overridden modules are mirrored (two list calls;
  `overrides.cluster.modules`), for the rollout verdict; then the rollout events of the overrides whose
  verdict inputs changed (`notifications.events.emit_verdict_transitions`).
The writes with an audit row go through `overrides.cluster.services`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from overrides.cluster import client as cluster
from overrides.cluster import modules as cluster_modules
from overrides.cluster import services as cluster_services
from overrides.cluster import skips
from overrides.cluster.client import MPO, MS, ClusterError
from overrides.cluster.services import ClusterIdentity, OverrideSpec, SourceSpec
from overrides.cluster.state import SYNC_OFF_MESSAGE, cluster_enabled
from overrides.models import (
    BUILTIN_SOURCE,
    DigestObservation,
    DigestOrigin,
    ModulePullOverride,
    ModuleSource,
    SyncState,
)
from overrides.notifications import events
from overrides.validators import DEFAULT_SCAN_INTERVAL, parse_scan_interval
from portal import metrics

logger = logging.getLogger("overrides.cluster.readback")


@dataclass
class ReadBackSummary:
    """What one read-back found and did; `ok` False (with `error`) when the cluster was off or unreachable."""

    ok: bool = True
    error: str = ""
    server: str = ""
    mpo_version: str = ""
    sources_seen: int = 0
    overrides_seen: int = 0
    imported: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)
    marked_deleted: list[str] = field(default_factory=list)
    status_updated: int = 0
    digests_recorded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    module_version: str = ""
    modules_updated: int = 0
    module_outcomes: list[str] = field(default_factory=list)
    skipped_objects: dict[skips.SkipKey, str] = field(default_factory=dict)

    def skip(self, kind: str, name: str, reason: str) -> None:
        """Leave a cluster object out of this pass; `record_skips` lists it for admins at the end."""
        self.skipped_objects[(kind, name)] = reason
        self.skipped.append(f"{kind} {name}: {reason}")

    def lines(self) -> list[str]:
        """The summary in words (the import_cluster command prints these; the read-back task returns them)."""
        if not self.ok:
            return [self.error]

        def names(items: list[str]) -> str:
            return ", ".join(items) if items else "none"

        lines = [f"Cluster {self.server} (ModulePullOverride {self.mpo_version}): {self.sources_seen} "
                 f"ModuleSource(s), {self.overrides_seen} ModulePullOverride(s).",
                 f"Imported: {names(self.imported)}.",
                 f"Changed in the cluster, taken over: {names(self.taken_over)}.",
                 f"Deleted in the cluster, marked deleted: {names(self.marked_deleted)}.",
                 f"Status refreshed: {self.status_updated} object(s); new digests: {names(self.digests_recorded)}."]
        lines.append(f"Modules ({self.module_version or 'not served'}): {self.modules_updated} refreshed; "
                     f"outcomes: {names(self.module_outcomes)}.")
        lines += [f"Not imported: {line}" for line in self.skipped]
        return lines


@metrics.READ_BACK_DURATION.time()
def read_back() -> ReadBackSummary:
    """One pass over the cluster (see the module docstring). Never raises for cluster failures."""
    summary = ReadBackSummary()
    if not cluster_enabled():
        return ReadBackSummary(ok=False, error=SYNC_OFF_MESSAGE)
    started = timezone.now()
    try:
        summary.server = cluster.api_server()
        sources = cluster.list_objects(MS, cluster.MS_VERSION)
        summary.mpo_version, overrides = cluster.with_mpo_version(lambda v: (v, cluster.list_objects(MPO, v)))
    except ClusterError as exc:
        return ReadBackSummary(ok=False, error=exc.message, server=summary.server)
    summary.sources_seen, summary.overrides_seen = len(sources), len(overrides)
    modules = cluster_modules.start_listing()  # the Module lists travel while the MPOs are brought in line
    _read_sources(sources, started, summary)
    _read_overrides(overrides, started, summary)
    mirrored_at = timezone.now()
    summary.module_version, summary.modules_updated, summary.module_outcomes = cluster_modules.mirror_modules(
        now=mirrored_at, listing=modules)
    if summary.modules_updated:  # rollout events follow the verdict, which reads both mirrors
        events.emit_verdict_transitions(ModulePullOverride.objects.filter(cluster_module__read_at=mirrored_at)
                                        .values_list("pk", flat=True))
    skips.record_skips(summary.skipped_objects)
    return summary


# --- shared rules ----------------------------------------------------------------------------------


def _meta(cr: dict[str, Any]) -> dict[str, Any]:
    return cr.get("metadata") or {}


def _identity(cr: dict[str, Any]) -> ClusterIdentity:
    meta = _meta(cr)
    return ClusterIdentity(uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""))


def _older(rv: str, than: str) -> bool:
    """resourceVersions are opaque, but numeric in practice (etcd revisions): where both are, an older one
    means a listing that predates what the row recorded."""
    return rv.isdigit() and than.isdigit() and int(rv) < int(than)


def _quiet_since(row, started: datetime) -> bool:
    """Synced, and not applied after the listing started (a listing older than the apply proves nothing)."""
    return row.sync_state == SyncState.SYNCED and (row.synced_at is None or row.synced_at < started)


def _moved(row, cr: dict[str, Any]) -> bool:
    rv = _identity(cr).resource_version
    return rv != row.cluster_resource_version and not _older(rv, row.cluster_resource_version)


def _revives(row, cr: dict[str, Any]) -> bool:
    """A deleted row meets a live CR of its name: import it only if it is a new object, and the portal's own
    deletion is done (not pending, and not the same object still being removed)."""
    return row.sync_state == SyncState.SYNCED and _identity(cr).uid != row.cluster_uid


def _gone(row, started: datetime) -> bool:
    """Rows never applied yet (pending creation) are not "deleted in the cluster"."""
    return _quiet_since(row, started) and row.applied_version > 0 and bool(row.cluster_uid)


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def _time(value: Any) -> datetime | None:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bookkeep(model, pk: int, values: dict[str, Any]) -> None:
    model.all_objects.filter(pk=pk).update(**values)


def _seen(model, pks: list[int]) -> None:
    """One write for every row whose CR was seen in this pass."""
    model.all_objects.filter(pk__in=pks).update(cluster_seen_at=timezone.now())


# --- sources ---------------------------------------------------------------------------------------


def source_spec_from_cr(cr: dict[str, Any]) -> SourceSpec:
    spec = cr.get("spec") or {}
    registry = spec.get("registry") if isinstance(spec.get("registry"), dict) else {}
    scheme = registry.get("scheme")
    return SourceSpec(repo=_text(registry.get("repo"), 512), scheme=scheme if scheme in ("HTTP", "HTTPS") else "HTTPS",
                      docker_cfg=_text(registry.get("dockerCfg"), 1_000_000), ca=_text(registry.get("ca"), 1_000_000),
                      release_channel=_text(spec.get("releaseChannel"), 64))


def normalize_source_modules(status: dict[str, Any]) -> list[dict[str, Any]]:
    """`status.modules[]` (either era) joined with the seed era's `moduleErrors[]`, as {name, policy,
    overridden, version, checksum, error}; a module known only from `moduleErrors` is listed with its error."""
    errors: dict[str, str] = {}
    for item in status.get("moduleErrors") or []:
        if isinstance(item, dict) and item.get("name"):
            errors[str(item["name"])] = _text(item.get("error"), 2000)
    modules: list[dict[str, Any]] = []
    for item in status.get("modules") or []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        name = str(item["name"])
        problems = [_text(item.get(k), 2000) for k in ("pullError", "error")] + [errors.pop(name, "")]
        modules.append({"name": name, "policy": _text(item.get("policy"), 200),
                        "overridden": item.get("overridden") is True, "version": _text(item.get("version"), 200),
                        "checksum": _text(item.get("checksum"), 200), "error": "; ".join(p for p in problems if p)})
    modules += [{"name": name, "policy": "", "overridden": False, "version": "", "checksum": "", "error": error}
                for name, error in errors.items()]
    return sorted(modules, key=lambda m: m["name"])


def _mirror_source_status(row: ModuleSource, cr: dict[str, Any], summary: ReadBackSummary) -> None:
    status = cr.get("status") if isinstance(cr.get("status"), dict) else {}
    values = {"status_modules": normalize_source_modules(status),
              "status_modules_count": _int(status.get("modulesCount")),
              "status_message": _text(status.get("message"), 10_000),
              "status_sync_time": _time(status.get("syncTime")), "status_phase": _text(status.get("phase"), 32)}
    if any(getattr(row, k) != v for k, v in values.items()):
        summary.status_updated += 1
        _bookkeep(ModuleSource, row.pk, values)


def _read_sources(items: list[dict[str, Any]], started: datetime, summary: ReadBackSummary) -> None:
    crs = {_meta(cr).get("name"): cr for cr in items if _meta(cr).get("name")}
    rows = {row.name: row for row in ModuleSource.all_objects.all()}
    seen: list[int] = []
    for name, cr in crs.items():
        row, spec, identity = rows.get(name), source_spec_from_cr(cr), _identity(cr)
        terminating = bool(_meta(cr).get("deletionTimestamp"))
        problem = "" if terminating else skips.source_problem(name, cr)
        if row is None or row.is_deleted:
            if terminating or (row is not None and not _revives(row, cr)):
                continue
            if problem:
                summary.skip(skips.MS_KIND, name, f"not imported: {problem}")
                continue
            row = cluster_services.source_import(name=name, spec=spec, identity=identity)
            if row is None:
                continue
            summary.imported.append(f"ModuleSource {name}")
        elif not terminating and _quiet_since(row, started) and _moved(row, cr):
            if problem:
                summary.skip(skips.MS_KIND, name, f"changed in the cluster, not taken over: {problem}")
            elif spec != source_spec_from_row(row):
                taken = cluster_services.source_take_over(source=row, spec=spec, identity=identity,
                                                          expected_version=row.spec_version)
                if taken is not None:
                    summary.taken_over.append(f"ModuleSource {name}")
            else:
                _bookkeep(ModuleSource, row.pk, {"cluster_uid": identity.uid,
                                                 "cluster_resource_version": identity.resource_version})
        _mirror_source_status(row, cr, summary)
        seen.append(row.pk)
    _seen(ModuleSource, seen)
    for name, row in rows.items():
        if name not in crs and not row.is_deleted and _gone(row, started):
            if cluster_services.source_mark_deleted_in_cluster(source=row, expected_version=row.spec_version):
                summary.marked_deleted.append(f"ModuleSource {name}")


def source_spec_from_row(row: ModuleSource) -> SourceSpec:
    return SourceSpec(repo=row.repo, scheme=row.scheme, docker_cfg=row.docker_cfg, ca=row.ca,
                      release_channel=row.release_channel)


# --- overrides -------------------------------------------------------------------------------------


def override_spec_from_cr(cr: dict[str, Any]) -> OverrideSpec:
    """Storable values: a scanInterval Deckhouse cannot use ("", "0s", garbage) is kept as the default."""
    spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
    raw_interval = spec.get("scanInterval")
    interval, note = _text(raw_interval, 32) if raw_interval is not None else DEFAULT_SCAN_INTERVAL, ""
    try:
        parse_scan_interval(interval)
    except Exception:  # noqa: BLE001 - any unusable value: the parser's ValidationError
        note = f'The cluster holds scanInterval "{_text(raw_interval, 32)}", which Deckhouse cannot use; ' \
               f"shown as {DEFAULT_SCAN_INTERVAL}."
        interval = DEFAULT_SCAN_INTERVAL
    source = spec.get("source")
    return OverrideSpec(image_tag=_text(spec.get("imageTag"), 128), scan_interval=interval,
                        rollback=spec.get("rollback") is True, source=source if isinstance(source, str) else None,
                        note=note)


def _pick_source(name: str, spec: OverrideSpec, sources: dict[str, ModuleSource]) -> tuple[ModuleSource | None, str]:
    """The source of an MPO: the one it names (v1alpha1), else the one whose status lists the module, else the
    only source there is. Returns (source, why not)."""
    if spec.source and spec.source in sources:
        return sources[spec.source], ""
    listing = [s for s in sources.values() if any(m.get("name") == name for m in s.status_modules or [])]
    if len(listing) > 1:
        listing = [s for s in listing if any(m.get("name") == name and m.get("overridden")
                                             for m in s.status_modules or [])]
    if len(listing) == 1:
        return listing[0], ""
    own = [s for s in sources.values() if s.name != BUILTIN_SOURCE] or list(sources.values())
    if not listing and len(own) == 1:
        return own[0], ""
    named = f'it names source "{spec.source}", which the portal does not know, and ' if spec.source else ""
    found = "several sources list it" if listing else "no source lists the module"
    return None, f"{named}{found}, so its source is unknown (the portal needs one)."


def _spec_of_row(row: ModulePullOverride) -> tuple:
    return row.image_tag, row.scan_interval, row.rollback


def _mirror_override_status(row: ModulePullOverride, cr: dict[str, Any], summary: ReadBackSummary) -> None:
    """Mirror the controller's status; a changed `imageDigest` adds one cluster-origin DigestObservation.

    The row's `status_image_digest` and the observation are written in one transaction, so a digest equal to
    the row's is already recorded; the row lock serializes concurrent read-backs (one change, one record).
    """
    status = cr.get("status") if isinstance(cr.get("status"), dict) else {}
    values = {"status_image_digest": _text(status.get("imageDigest"), 100),
              "status_message": _text(status.get("message"), 10_000),
              "status_updated_at": _time(status.get("updatedAt")), "status_weight": _int(status.get("weight"))}
    if all(getattr(row, k) == v for k, v in values.items()):
        return
    summary.status_updated += 1
    digest = values["status_image_digest"]
    with transaction.atomic():
        locked = ModulePullOverride.all_objects.select_for_update().select_related("source").get(pk=row.pk)
        _bookkeep(ModulePullOverride, row.pk, values)
        if not digest or digest == locked.status_image_digest:
            return
        last = DigestObservation.objects.filter(override=locked, origin=DigestOrigin.CLUSTER).first()
        if last is not None and last.digest == digest:
            return
        DigestObservation.objects.create(override=locked, digest=digest, previous_digest=last.digest if last else "",
                                         image_ref=locked.image_ref, origin=DigestOrigin.CLUSTER,
                                         observed_at=timezone.now())
        metrics.cluster_reports_digest(row.pk, digest, timezone.now())
    summary.digests_recorded.append(f"{row.name}@{digest}")


def _read_overrides(items: list[dict[str, Any]], started: datetime, summary: ReadBackSummary) -> None:
    crs = {_meta(cr).get("name"): cr for cr in items if _meta(cr).get("name")}
    rows = {row.name: row for row in ModulePullOverride.all_objects.select_related("source")}
    sources = {s.name: s for s in ModuleSource.objects.all()}
    seen: list[int] = []
    for name, cr in crs.items():
        row, spec, identity = rows.get(name), override_spec_from_cr(cr), _identity(cr)
        terminating = bool(_meta(cr).get("deletionTimestamp"))
        problem = "" if terminating else skips.override_problem(name, cr)
        if row is None or row.is_deleted:
            if terminating or (row is not None and not _revives(row, cr)):
                continue
            if problem:
                summary.skip(skips.MPO_KIND, name, f"not imported: {problem}")
                continue
            source, why = _pick_source(name, spec, sources)
            if source is None:
                summary.skip(skips.MPO_KIND, name, why)
                continue
            row = cluster_services.override_import(name=name, spec=spec, source=source, identity=identity)
            if row is None:
                continue
            summary.imported.append(f"ModulePullOverride {name}")
        elif not terminating and _quiet_since(row, started) and _moved(row, cr):
            source = sources.get(spec.source) if spec.source else None
            if problem:
                summary.skip(skips.MPO_KIND, name, f"changed in the cluster, not taken over: {problem}")
            elif (spec.image_tag, spec.scan_interval, spec.rollback) != _spec_of_row(row) or (
                    source is not None and source.pk != row.source_id):
                taken = cluster_services.override_take_over(
                    override=row, spec=spec, source=source or row.source, identity=identity,
                    expected_version=row.spec_version)
                if taken is not None:
                    summary.taken_over.append(f"ModulePullOverride {name}")
            else:
                _bookkeep(ModulePullOverride, row.pk, {"cluster_uid": identity.uid,
                                                       "cluster_resource_version": identity.resource_version})
        _mirror_override_status(row, cr, summary)
        seen.append(row.pk)
    _seen(ModulePullOverride, seen)
    for name, row in rows.items():
        if name not in crs and not row.is_deleted and _gone(row, started):
            if cluster_services.override_mark_deleted_in_cluster(override=row, expected_version=row.spec_version):
                summary.marked_deleted.append(f"ModulePullOverride {name}")
