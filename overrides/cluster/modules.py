"""Cluster -> portal, second half of the read-back: the `Module` and `ModuleConfig` of every overridden module.

Two list calls per pass (Modules in the version the cluster serves, ModuleConfigs), whatever the number of
overrides. Each Module is normalized (`parse_module`) from either version: v1alpha1 `status.phase` with its
`IsReady` / `EnabledByModuleManager` conditions and `hooksState`, or v1beta1 `status.summary` with the
`modules.deckhouse.io/hash` annotation. A field missing or of a shape the portal does not know lands in
`problems` (the verdict is then `unknown`), never in an exception.

The row records, on the portal's clock, when it first saw the MPO's digest and message, the Module's health,
and the Module's outcome on the digest: Ready (or failed) *since after* the digest was reported, which is
proven by one of: the portal saw the health change after it saw the digest; the ready condition's
`lastTransitionTime` is not older than the MPO's `updatedAt` when the digest first appeared (both the cluster's
clock); v1beta1's runtime hash equals the digest. Each outcome adds one `DigestObservation(origin="module")`.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from overrides.cluster import client as cluster
from overrides.cluster.client import MODULE, MODULE_CONFIG, ClusterError
from overrides.models import ClusterModule, DigestObservation, DigestOrigin, ModuleHealth, ModulePullOverride

logger = logging.getLogger("overrides.cluster.modules")

HASH_ANNOTATION = "modules.deckhouse.io/hash"
V1ALPHA1_PHASES = {
    "Ready": ModuleHealth.READY, "Error": ModuleHealth.FAILED, "DownloadingError": ModuleHealth.FAILED,
    "Reconciling": ModuleHealth.RECONCILING, "Installing": ModuleHealth.RECONCILING,
    "Downloading": ModuleHealth.RECONCILING, "WaitSyncTasks": ModuleHealth.RECONCILING,
    "Available": ModuleHealth.RECONCILING, "Downloaded": ModuleHealth.RECONCILING,
    "HooksDisabled": ModuleHealth.DISABLED, "Unavailable": ModuleHealth.DISABLED, "Conflict": ModuleHealth.CONFLICT,
}
V1BETA1_STATES = {
    "Ready": ModuleHealth.READY, "Failed": ModuleHealth.FAILED, "Degraded": ModuleHealth.FAILED,
    "Updating": ModuleHealth.RECONCILING, "Pending": ModuleHealth.RECONCILING,
    "Suspended": ModuleHealth.DISABLED, "Deleting": ModuleHealth.DISABLED,
}
TEXT_LIMIT = 10_000


@dataclass
class ModuleView:
    """One Module as the portal understands it (see the module docstring)."""

    api_version: str
    health: str = ModuleHealth.UNKNOWN
    phase: str = ""
    reason: str = ""
    tip: str = ""
    conditions: list[dict[str, str]] = field(default_factory=list)
    hooks_state: str = ""
    ready_condition_at: datetime | None = None
    runtime_digest: str = ""
    source: str = ""
    version: str = ""
    problems: list[str] = field(default_factory=list)


def _text(value: Any, limit: int = TEXT_LIMIT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _string(container: dict[str, Any], key: str, where: str, problems: list[str], required: bool = False) -> str:
    value = container.get(key)
    if value is None:
        if required:
            problems.append(f"{where}.{key} is missing")
        return ""
    if not isinstance(value, str):
        problems.append(f"{where}.{key} is not a string")
        return ""
    return value[:TEXT_LIMIT]


def _time(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value) if value else None
    except ValueError:
        return None
    return timezone.make_aware(parsed, UTC) if parsed is not None and timezone.is_naive(parsed) else parsed


def _conditions(status: dict[str, Any], problems: list[str]) -> list[dict[str, str]]:
    raw = status.get("conditions")
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("status.conditions is not a list")
        return []
    found = []
    for index, item in enumerate(raw):
        where = f"status.conditions[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} is not an object")
            continue
        condition = {key: _string(item, key, where, problems, required=key in ("type", "status"))
                     for key in ("type", "status", "reason", "message", "lastTransitionTime")}
        if condition["type"]:
            found.append(condition)
    return found


def _condition(conditions: list[dict[str, str]], kind: str) -> dict[str, str]:
    return next((c for c in conditions if c["type"] == kind), {})


def _words(condition: dict[str, str]) -> str:
    return ": ".join(p for p in (condition.get("reason", ""), condition.get("message", "")) if p)


def parse_module(cr: dict[str, Any], version: str) -> ModuleView:
    """Normalize a Module of `version` (v1alpha1 or v1beta1); never raises on a malformed object."""
    view = ModuleView(api_version=version)
    status = cr.get("status")
    if status is None:
        view.problems.append("the Module has no status yet")
        return view
    if not isinstance(status, dict):
        view.problems.append("status is not an object")
        return view
    view.conditions = _conditions(status, view.problems)
    if version == "v1alpha1":
        props = cr.get("properties") if isinstance(cr.get("properties"), dict) else {}
        view.source, view.version = _text(props.get("source"), 253), _text(props.get("version"), 200)
        view.phase = _string(status, "phase", "status", view.problems, required=True)
        view.hooks_state = _string(status, "hooksState", "status", view.problems)
        ready, enabled = _condition(view.conditions, "IsReady"), _condition(view.conditions, "EnabledByModuleManager")
        health = V1ALPHA1_PHASES.get(view.phase)
        if view.phase and health is None:
            view.problems.append(f'status.phase "{view.phase[:64]}" is not a phase the portal knows')
        if health == ModuleHealth.READY and ready and ready.get("status") != "True":
            health = ModuleHealth.RECONCILING  # the phase and its condition disagree: not Ready yet
        if view.phase == "Downloaded" and enabled.get("status") == "False":
            health = ModuleHealth.DISABLED
        view.reason = _words(enabled) if health == ModuleHealth.DISABLED and enabled else _words(ready)
    else:
        meta = cr.get("metadata") if isinstance(cr.get("metadata"), dict) else {}
        annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
        view.runtime_digest = _text(annotations.get(HASH_ANNOTATION), 100)
        spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
        view.source, view.version = _text(spec.get("packageRepositoryName"), 253), _text(spec.get("packageVersion"),
                                                                                           200)
        summary = status.get("summary")
        if not isinstance(summary, dict):
            view.problems.append("status.summary is missing" if summary is None else "status.summary is not an object")
            summary = {}
        view.phase = _string(summary, "state", "status.summary", view.problems, required=bool(summary))
        view.reason = _string(summary, "message", "status.summary", view.problems)
        view.tip = _string(summary, "tip", "status.summary", view.problems)
        ready = _condition(view.conditions, "Ready")
        health = V1BETA1_STATES.get(view.phase)
        if view.phase and health is None:
            view.problems.append(f'status.summary.state "{view.phase[:64]}" is not a state the portal knows')
        if not view.reason and health == ModuleHealth.FAILED:
            view.reason = _words(ready)
    # When readiness last changed, either way: a Ready *or* a failure reported at or after the digest is about it.
    view.ready_condition_at = _time(ready.get("lastTransitionTime")) if ready else None
    view.health = ModuleHealth.UNKNOWN if view.problems or health is None else health
    return view


def parse_module_config(cr: dict[str, Any] | None) -> tuple[str, bool | None]:
    """(status.message, spec.enabled) of a ModuleConfig; ("", None) when there is none or it is malformed."""
    if not isinstance(cr, dict):
        return "", None
    status = cr.get("status") if isinstance(cr.get("status"), dict) else {}
    spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
    enabled = spec.get("enabled")
    return _text(status.get("message")), enabled if isinstance(enabled, bool) else None


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(i["metadata"]["name"]): i for i in items
            if isinstance(i.get("metadata"), dict) and isinstance(i["metadata"].get("name"), str)}


def _list_configs() -> dict[str, dict[str, Any]]:
    try:
        return _by_name(cluster.list_objects(MODULE_CONFIG, cluster.MC_VERSION))
    except ClusterError as exc:
        logger.warning("ModuleConfigs not read: %s", exc.message)
        return {}


def list_modules() -> tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]], str]:
    """(Module version, Modules by name, ModuleConfigs by name, why Modules could not be read); the two lists
    travel at once."""
    configs = _config_lister.submit(_list_configs)
    try:
        version = cluster.module_version()
        modules = _by_name(cluster.list_objects(MODULE, version))
    except ClusterError as exc:
        configs.cancel()
        return "", {}, {}, f"The portal cannot read the cluster's Modules: {exc.message}"
    return version, modules, configs.result(), ""


_lister = ThreadPoolExecutor(max_workers=2, thread_name_prefix="module-list")
_config_lister = ThreadPoolExecutor(max_workers=2, thread_name_prefix="moduleconfig-list")


def start_listing() -> Future:
    """`list_modules()` in a background thread (it touches no database), for the read-back to overlap."""
    return _lister.submit(list_modules)


def _fresh(view: ModuleView, row: ClusterModule) -> bool:
    """The Module's current health is about the MPO's current digest (see the module docstring)."""
    if row.digest_seen_at is None:
        return False
    if row.health_seen_at is not None and row.health_seen_at > row.digest_seen_at:
        return True
    if view.runtime_digest and view.runtime_digest == row.digest:
        return True
    reported = row.digest_reported_at
    return bool(view.ready_condition_at and reported and view.ready_condition_at >= reported.replace(microsecond=0))


def _values(override: ModulePullOverride, row: ClusterModule, view: ModuleView | None, config: tuple[str, bool | None],
            missing: str, now: datetime) -> dict[str, Any]:
    """The row's new field values (only those that change)."""
    new: dict[str, Any] = {}
    digest, message = override.status_image_digest, override.status_message
    if digest != row.digest:
        new.update(digest=digest, digest_seen_at=now, digest_reported_at=override.status_updated_at)
    if message != row.message:
        new.update(message=message, message_seen_at=now)
    view = view or ModuleView(api_version="", problems=[missing])
    module = {"api_version": view.api_version, "health": view.health, "phase": view.phase[:32],
              "reason": view.reason, "tip": view.tip, "conditions": view.conditions, "hooks_state": view.hooks_state,
              "ready_condition_at": view.ready_condition_at, "runtime_digest": view.runtime_digest,
              "module_source": view.source, "module_version": view.version, "problems": view.problems}
    new.update({k: v for k, v in module.items() if getattr(row, k) != v})
    if view.health != row.health:
        new["health_seen_at"] = now
    if config[0] != row.config_message:
        new.update(config_message=config[0], config_message_seen_at=now)
    if config[1] != row.config_enabled:
        new["config_enabled"] = config[1]
    for key, value in new.items():
        setattr(row, key, value)
    if row.digest and _fresh(view, row):
        if view.health == ModuleHealth.READY and row.ready_digest != row.digest:
            new.update(ready_digest=row.digest, ready_at=now)
        elif view.health == ModuleHealth.FAILED and (row.failed_digest, row.failure) != (row.digest, view.reason):
            new.update(failed_digest=row.digest, failed_at=now, failure=view.reason or view.phase)
    for key, value in new.items():
        setattr(row, key, value)
    return new


def _observed(version: str, module: dict[str, Any] | None, config: dict[str, Any] | None, digest: str,
              message: str, missing: str) -> str:
    """A short fingerprint of a row's inputs: the objects' resourceVersions, the MPO's digest and message."""
    def rv(cr: dict[str, Any] | None) -> str:
        return str((cr or {}).get("metadata", {}).get("resourceVersion") or "-")[:40]

    text = hashlib.blake2b(f"{message}\0{missing}".encode(), digest_size=8).hexdigest()
    return f"{version}|{rv(module)}|{rv(config)}|{digest[-16:]}|{text}"


def mirror_modules(now: datetime | None = None, listing: Future | None = None) -> tuple[str, int, list[str]]:
    """Mirror the Modules and ModuleConfigs of every live override: (Module version, rows written, outcomes).

    `listing` is a `start_listing()` already under way. Rows whose inputs did not change since the last pass
    (`ClusterModule.observed`) are not loaded at all.
    """
    live = list(ModulePullOverride.objects.values_list("pk", "name", "status_image_digest", "status_message"))
    if not live:
        return "", 0, []
    now = now or timezone.now()
    version, modules, configs, missing = listing.result() if listing is not None else list_modules()
    known = dict(ClusterModule.objects.values_list("override_id", "observed"))
    todo: dict[int, str] = {}
    for pk, name, digest, message in live:
        observed = _observed(version, modules.get(name), configs.get(name), digest, message, missing)
        if known.get(pk) != observed:
            todo[pk] = observed
    if not todo:
        return version, 0, []
    created: list[ClusterModule] = []
    changed: dict[str, list[ClusterModule]] = {}
    observations: list[DigestObservation] = []
    for override in ModulePullOverride.objects.select_related("cluster_module", "source").filter(pk__in=list(todo)):
        try:
            row = override.cluster_module
        except ClusterModule.DoesNotExist:
            row = ClusterModule(override=override)
        cr = modules.get(override.name)
        view = parse_module(cr, version) if cr is not None else None
        why = missing or f"The cluster has no Module {override.name} (yet)."
        new = _values(override, row, view, parse_module_config(configs.get(override.name)), why, now)
        row.read_at, row.observed = now, todo[override.pk]
        if row.pk is None:
            created.append(row)
        else:
            changed.setdefault(",".join(sorted(new)), []).append(row)
        if "ready_at" in new or "failed_at" in new:
            failed = "failed_at" in new
            observations.append(DigestObservation(
                override=override, digest=row.digest, image_ref=override.image_ref, origin=DigestOrigin.MODULE,
                observed_at=now, outcome="failed" if failed else "ready", reason=row.failure if failed else ""))
    with transaction.atomic():
        # ignore_conflicts: a read-back running beside this one (import_cluster) may have created the row first.
        ClusterModule.objects.bulk_create(created, batch_size=500, ignore_conflicts=True)
        for fields, rows in changed.items():
            ClusterModule.objects.bulk_update(rows, [*filter(None, fields.split(",")), "read_at", "observed"],
                                              batch_size=500)
        DigestObservation.objects.bulk_create(observations, batch_size=500)
    outcomes = [f"{o.override.name}@{o.digest} {o.outcome}" for o in observations]
    return version, len(created) + sum(len(rows) for rows in changed.values()), outcomes
