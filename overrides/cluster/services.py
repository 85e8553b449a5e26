"""The service layer for changes that come from the cluster: imports, take-overs and deletions seen there.

The read-back (`overrides.cluster.readback`) calls these; they are the cluster-context twins of `overrides.services`:
each locks the row, re-checks that the portal has no change of its own pending (a pending portal change wins:
the apply will write it), saves, and writes its audit row with the `cluster` actor, in one transaction. They
never refuse what the cluster holds (no validation): the read-back hands them sane values (`OverrideSpec`,
`SourceSpec`). The row stays `synced`: `spec_version` is bumped and `applied_version` set equal, so nothing is
applied back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from overrides.audit import Actor, record_change, snapshot, source_change_after
from overrides.models import ChangeAction, ChangeContext, ModulePullOverride, ModuleSource, SyncState
from overrides.notifications import events

CLUSTER = Actor.system(ChangeContext.CLUSTER)
IMPORTED = "imported from the cluster"
CHANGED = "changed in the cluster"
DELETED = "deleted in the cluster"


@dataclass(frozen=True)
class OverrideSpec:
    """An MPO's spec as read from the cluster, made storable. `source` is None where the CR names none
    (v1alpha2) or names one the portal does not know; `note` says what had to be adjusted."""

    image_tag: str
    scan_interval: str
    rollback: bool
    source: str | None = None
    note: str = ""


@dataclass(frozen=True)
class SourceSpec:
    """A ModuleSource's spec as read from the cluster. `docker_cfg` is a secret (stored encrypted)."""

    repo: str
    scheme: str
    docker_cfg: str = field(repr=False)
    ca: str
    release_channel: str


@dataclass(frozen=True)
class ClusterIdentity:
    """The CR the change was read from (kept to detect the next drift or deletion)."""

    uid: str
    resource_version: str


def _mark_cluster_state(obj, identity: ClusterIdentity | None, message: str) -> None:
    """The desired state now *is* the cluster's: a new version, already applied."""
    now = timezone.now()
    obj.bump_spec_version()
    obj.applied_version = obj.spec_version
    obj.sync_state = SyncState.SYNCED
    obj.sync_message = message
    obj.synced_at = now
    obj.sync_attempts = 0
    obj.next_sync_at = None
    obj.cluster_seen_at = now
    if identity is not None:
        obj.cluster_uid, obj.cluster_resource_version = identity.uid, identity.resource_version


def _portal_has_pending_change(obj, expected_version: int) -> bool:
    return obj.is_deleted or obj.sync_state != SyncState.SYNCED or obj.spec_version != expected_version


def _set_override_spec(override: ModulePullOverride, spec: OverrideSpec, source: ModuleSource) -> None:
    old_ref = (override.source_id, override.image_tag, override.scan_interval)
    override.source = source
    override.image_tag, override.scan_interval, override.rollback = spec.image_tag, spec.scan_interval, spec.rollback
    if (override.source_id, override.image_tag, override.scan_interval) != old_ref or override.pk is None:
        # A new image reference or interval: the portal's own registry check starts over, now.
        override.reset_registry_view()


# --- overrides -------------------------------------------------------------------------------------


@transaction.atomic
def override_import(
    *, name: str, spec: OverrideSpec, source: ModuleSource, identity: ClusterIdentity
) -> ModulePullOverride | None:
    """A ModulePullOverride the portal does not have: create its row (or revive a deleted one), unmanaged.
    None when the portal created the name meanwhile (its own row wins)."""
    override = ModulePullOverride.all_objects.select_for_update().filter(name=name).first()
    if override is not None and not override.is_deleted:
        return None
    before = snapshot(override) if override is not None else None
    override = override or ModulePullOverride(name=name)
    override.deleted_at = None
    override.managed = False
    override.renew_requested_at, override.renew_force = None, False
    _set_override_spec(override, spec, source)
    _mark_cluster_state(override, identity, "Imported from the cluster." + (f" {spec.note}" if spec.note else ""))
    override.save()
    record_change(actor=CLUSTER, action=ChangeAction.IMPORT, obj=override, before=before, after=snapshot(override),
                  message=IMPORTED, force=True)
    return override


@transaction.atomic
def override_take_over(
    *, override: ModulePullOverride, spec: OverrideSpec, source: ModuleSource, identity: ClusterIdentity,
    expected_version: int,
) -> ModulePullOverride | None:
    """The CR's spec was changed behind the portal's back: it becomes the row's desired state (audited as an
    update by the cluster). None when the portal changed the row meanwhile (the portal's change wins)."""
    override = ModulePullOverride.all_objects.select_for_update().select_related("source").get(pk=override.pk)
    if _portal_has_pending_change(override, expected_version):
        return None
    before = snapshot(override)
    _set_override_spec(override, spec, source)
    _mark_cluster_state(override, identity, "Taken over: changed in the cluster." + (
        f" {spec.note}" if spec.note else ""))
    override.save()
    record_change(actor=CLUSTER, action=ChangeAction.UPDATE, obj=override, before=before, after=snapshot(override),
                  message=CHANGED)
    events.emit(events.DRIFT_DETECTED, override, before=before, after=snapshot(override))
    return override


@transaction.atomic
def override_mark_deleted_in_cluster(*, override: ModulePullOverride, expected_version: int) -> bool:
    """The CR of a synced row is gone: the row is marked deleted (history kept), never recreated."""
    override = ModulePullOverride.all_objects.select_for_update().select_related("source").get(pk=override.pk)
    if _portal_has_pending_change(override, expected_version):
        return False
    before = snapshot(override)
    override.deleted_at = timezone.now()
    override.next_check_at = None
    _mark_cluster_state(override, None, "This override was deleted in the cluster; the portal keeps its history "
                                        "and does not recreate it.")
    override.save()
    record_change(actor=CLUSTER, action=ChangeAction.DELETE, obj=override, before=before, after=None,
                  message=DELETED)
    return True


# --- sources ---------------------------------------------------------------------------------------


def _set_source_spec(source: ModuleSource, spec: SourceSpec) -> None:
    if spec.repo != source.repo:
        source.next_discovery_at = timezone.now()
    source.repo, source.scheme, source.docker_cfg = spec.repo, spec.scheme, spec.docker_cfg
    source.ca, source.release_channel = spec.ca, spec.release_channel


@transaction.atomic
def source_import(*, name: str, spec: SourceSpec, identity: ClusterIdentity) -> ModuleSource | None:
    """A ModuleSource the portal does not have (the `deckhouse` one included): create or revive its row."""
    source = ModuleSource.all_objects.select_for_update().filter(name=name).first()
    if source is not None and not source.is_deleted:
        return None
    before = snapshot(source) if source is not None else None
    source = source or ModuleSource(name=name)
    source.deleted_at = None
    source.managed = False
    source.next_discovery_at = timezone.now()
    _set_source_spec(source, spec)
    _mark_cluster_state(source, identity, "Imported from the cluster.")
    source.save()
    record_change(actor=CLUSTER, action=ChangeAction.IMPORT, obj=source, before=before, after=snapshot(source),
                  message=IMPORTED, force=True)
    return source


@transaction.atomic
def source_take_over(
    *, source: ModuleSource, spec: SourceSpec, identity: ClusterIdentity, expected_version: int
) -> ModuleSource | None:
    """The ModuleSource's spec was changed in the cluster: it becomes the row's desired state."""
    source = ModuleSource.all_objects.select_for_update().get(pk=source.pk)
    if _portal_has_pending_change(source, expected_version):
        return None
    before, old_secret = snapshot(source), source.docker_cfg
    _set_source_spec(source, spec)
    _mark_cluster_state(source, identity, "Taken over: changed in the cluster.")
    source.save()
    after = source_change_after(source, before, old_secret)
    record_change(actor=CLUSTER, action=ChangeAction.UPDATE, obj=source, before=before, after=after, message=CHANGED)
    return source


@transaction.atomic
def source_mark_deleted_in_cluster(*, source: ModuleSource, expected_version: int) -> bool:
    """The ModuleSource of a synced row is gone from the cluster: marked deleted, never recreated."""
    source = ModuleSource.all_objects.select_for_update().get(pk=source.pk)
    if _portal_has_pending_change(source, expected_version):
        return False
    before = snapshot(source)
    source.deleted_at = timezone.now()
    source.next_discovery_at = None
    _mark_cluster_state(source, None, "This source was deleted in the cluster; the portal keeps its history and "
                                      "does not recreate it.")
    source.save()
    record_change(actor=CLUSTER, action=ChangeAction.DELETE, obj=source, before=before, after=None, message=DELETED)
    return True
