"""The one writer: every change of a source or an override goes through these functions.

The admin, the REST API, the web UI, the jobs and the commands call them alike. Each validates, saves and
writes its audit row in one transaction, marks the row for the cluster (level-triggered apply, see
design.md) and enqueues the follow-up work after commit. Keyword-only, typed, named `<entity>_<action>`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from overrides import enqueue, lifetime, offers
from overrides.audit import Actor, record_change, snapshot, source_change_after
from overrides.cluster.state import SYNC_OFF_MESSAGE, cluster_enabled
from overrides.models import ChangeAction, ChangeContext, ModulePullOverride, ModuleSource, SyncState
from overrides.notifications import events
from overrides.scopes import require_module_scope
from overrides.validators import DEFAULT_SCAN_INTERVAL

OVERRIDE_FIELDS = ("source", "image_tag", "scan_interval", "rollback", "auto_renew")
LIFETIME_FIELDS = ("reason", "expires")  # `expires`: a datetime, ISO text, a duration from now, or "never"
# Portal-only settings of an override: audited, but not part of the CR (a change of them applies nothing).
PORTAL_ONLY_KEYS = ("autoRenew",)
SOURCE_FIELDS = ("repo", "scheme", "docker_cfg", "ca", "release_channel")
APPLY_TASK_GRACE = timedelta(seconds=30)


def mark_desired_state_changed(obj) -> None:
    """A new desired state: bump its version and queue it for the cluster (or say that sync is off)."""
    obj.bump_spec_version()
    obj.sync_attempts = 0
    if cluster_enabled():
        obj.sync_state = SyncState.PENDING
        obj.sync_message = "Waiting to be applied to the cluster."
        # The apply task enqueued after commit applies it at once; the dispatcher's sweep takes the row only if
        # that task is lost (a worker crash), so one change is not applied twice.
        obj.next_sync_at = timezone.now() + APPLY_TASK_GRACE
    else:
        obj.sync_state = SyncState.OFF
        obj.sync_message = SYNC_OFF_MESSAGE
        obj.next_sync_at = None


def _after_commit_apply(obj) -> None:
    if obj.sync_state == SyncState.PENDING:
        enqueue.enqueue_apply(obj)


# An override's foreign keys are resolved by the services themselves (the source by `_resolve_source`, the owner
# from the actor), so model validation does not look them up again (one query each).
RESOLVED_OVERRIDE_KEYS = ["source", "owner"]


def _full_clean(obj, exclude: list[str] | None = None) -> None:
    # Uniqueness of the name is checked by the services themselves (deleted rows are revived, not duplicated).
    obj.full_clean(exclude=exclude, validate_unique=False)


# --- sources ---------------------------------------------------------------------------------------


def _refuse_builtin(source: ModuleSource) -> None:
    if source.is_builtin:
        raise ValidationError(
            {"name": 'The "deckhouse" ModuleSource is created and managed by Deckhouse itself; it cannot be '
             "changed or deleted here."}
        )


@sensitive_variables()  # the credential, and what model validation derives from it below
@transaction.atomic
def source_create(
    *,
    actor: Actor,
    name: str,
    repo: str,
    scheme: str = "HTTPS",
    docker_cfg: str = "",
    ca: str = "",
    release_channel: str = "",
    message: str = "",
) -> ModuleSource:
    """Create a ModuleSource (or bring back a deleted one of that name)."""
    source = ModuleSource.all_objects.select_for_update().filter(name=name).first()
    if source is not None and not source.is_deleted:
        raise ValidationError({"name": f'A source named "{name}" already exists.'})
    if name == "deckhouse":
        raise ValidationError({"name": 'The "deckhouse" ModuleSource is created by Deckhouse itself.'})
    source = source or ModuleSource(name=name)
    source.deleted_at = None
    source.repo, source.scheme, source.docker_cfg, source.ca = repo, scheme, docker_cfg, ca
    source.release_channel = release_channel
    source.next_discovery_at = timezone.now()
    _full_clean(source)
    mark_desired_state_changed(source)
    source.save()
    record_change(actor=actor, action=ChangeAction.CREATE, obj=source, before=None, after=snapshot(source),
                  message=message)
    _after_commit_apply(source)
    enqueue.enqueue_discovery(source.pk)
    return source


@sensitive_variables()  # the credentials old and new, and what model validation derives from them below
@transaction.atomic
def source_update(*, actor: Actor, source: ModuleSource, message: str = "", **changes: Any) -> ModuleSource:
    """Change a source's spec. `docker_cfg=None` (or absent) keeps the stored credential; "" clears it."""
    unknown = set(changes) - set(SOURCE_FIELDS)
    if unknown:
        raise TypeError(f"unknown source fields: {sorted(unknown)}")
    source = ModuleSource.objects.select_for_update().get(pk=source.pk)
    _refuse_builtin(source)
    before = snapshot(source)
    old_secret, old_repo = source.docker_cfg, source.repo
    for field, value in changes.items():
        if field == "docker_cfg" and value is None:
            continue
        setattr(source, field, value)
    _full_clean(source)
    if snapshot(source) == before and source.docker_cfg == old_secret:
        return source
    if source.repo != old_repo:
        source.next_discovery_at = timezone.now()
        enqueue.enqueue_discovery(source.pk)
    mark_desired_state_changed(source)
    source.save()
    after = source_change_after(source, before, old_secret)
    record_change(actor=actor, action=ChangeAction.UPDATE, obj=source, before=before, after=after, message=message)
    _after_commit_apply(source)
    return source


@transaction.atomic
def source_upsert(*, actor: Actor, name: str, data: dict[str, Any], message: str = "") -> tuple[ModuleSource, bool]:
    """Create or update the source `name` (the API's PUT); returns (source, created). Creating, an omitted
    docker_cfg means no credentials; updating, it keeps the stored ones (as `source_update`)."""
    existing = ModuleSource.objects.select_for_update().filter(name=name).first()
    if existing is None:
        if "repo" not in data:
            raise ValidationError({"repo": "This field is required."})
        fields = {**data, "docker_cfg": data.get("docker_cfg") or ""}
        return source_create(actor=actor, name=name, message=message, **fields), True
    return source_update(actor=actor, source=existing, message=message, **data), False


@transaction.atomic
def source_delete(*, actor: Actor, source: ModuleSource, message: str = "") -> None:
    """Delete a source that no override uses; the cluster's ModuleSource is deleted by the apply."""
    source = ModuleSource.objects.select_for_update().get(pk=source.pk)
    _refuse_builtin(source)
    users = list(ModulePullOverride.objects.filter(source=source).values_list("name", flat=True)[:10])
    if users:
        raise ValidationError(
            {"name": f'Source "{source.name}" is used by the overrides {", ".join(users)}: delete or move them first.'}
        )
    before = snapshot(source)
    source.deleted_at = timezone.now()
    mark_desired_state_changed(source)
    source.save()
    record_change(actor=actor, action=ChangeAction.DELETE, obj=source, before=before, after=None, message=message)
    _after_commit_apply(source)


# --- overrides -------------------------------------------------------------------------------------


def _resolve_source(source: ModuleSource | str) -> ModuleSource:
    if isinstance(source, ModuleSource):
        if source.is_deleted:
            raise ValidationError({"source": f'Source "{source.name}" was deleted.'})
        return source
    found = ModuleSource.objects.filter(name=source).first()
    if found is None:
        raise ValidationError({"source": f'There is no source named "{source}".'})
    return found


def override_create(
    *,
    actor: Actor,
    name: str,
    source: ModuleSource | str,
    image_tag: str,
    scan_interval: str = DEFAULT_SCAN_INTERVAL,
    rollback: bool = False,
    auto_renew: bool = True,
    message: str = "",
    reason: str = "",
    expires: Any = None,
) -> ModulePullOverride:
    """Override module `name` with `<source repo>/<name>:<image_tag>`; a deleted override of it comes back.
    The actor's user owns it; it expires after PORTAL_OVERRIDE_TTL unless `expires` says otherwise."""
    require_module_scope(actor.user, name)
    found = source if isinstance(source, ModuleSource) else ModuleSource.objects.filter(name=source).first()
    relisted = offers.relist_if_missing(name, found)  # before the transaction: no registry call under its locks
    return _override_create(actor=actor, name=name, source=found or source, image_tag=image_tag,
                            scan_interval=scan_interval, rollback=rollback, auto_renew=auto_renew, message=message,
                            reason=reason, expires=expires, relisted=relisted)


@transaction.atomic
def _override_create(*, actor: Actor, name: str, source: ModuleSource | str, image_tag: str, scan_interval: str,
                     rollback: bool, auto_renew: bool, message: str, reason: str, expires: Any,
                     relisted: offers.Relisting | None) -> ModulePullOverride:
    source = _resolve_source(source)
    override = ModulePullOverride.all_objects.select_for_update().filter(name=name).first()
    if override is not None and not override.is_deleted:
        raise ValidationError({"name": f'Module "{name}" is already overridden.'})
    override = override or ModulePullOverride(name=name)
    override.deleted_at = None
    override.source, override.image_tag = source, image_tag
    override.scan_interval, override.rollback = scan_interval or DEFAULT_SCAN_INTERVAL, rollback
    override.auto_renew = auto_renew
    override.renew_requested_at, override.renew_force = None, False
    _full_clean(override, exclude=RESOLVED_OVERRIDE_KEYS)
    offers.check_module_offered(name, source, relisted)
    lifetime.start_lifetime(override, actor, now=timezone.now(), expires=expires, reason=reason)
    override.reset_registry_view()
    mark_desired_state_changed(override)
    override.save()
    record_change(actor=actor, action=ChangeAction.CREATE, obj=override, before=None,
                  after={**snapshot(override), **lifetime.lifetime_snapshot(override)}, message=message)
    events.emit(events.OVERRIDE_CREATED, override, actor=actor.name)
    _after_commit_apply(override)
    enqueue.enqueue_check(override.pk)
    return override


def _lock_for_write(override: ModulePullOverride, actor: Actor, *, take_over: bool = False,
                    expires: Any = None, reason: str | None = None) -> ModulePullOverride:
    """The row, locked, after the ownership rule (`lifetime.gate_write`: 409 for someone else's override unless
    `take_over`); a claim, a take-over or a lifetime change is saved and audited here, the owner's write moves the
    expiry forward."""
    # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the owner join.
    # The Module mirror comes along for the answer's verdict.
    locked = ModulePullOverride.objects.select_for_update(of=("self",)).select_related("source", "owner",
                                                                                       "cluster_module")
    override = locked.get(pk=override.pk)
    require_module_scope(actor.user, override.name)
    gate = lifetime.gate_write(override, actor, take_over=take_over)
    before = lifetime.lifetime_snapshot(override)
    if not lifetime.apply_write(override, actor, gate, now=timezone.now(), expires=expires, reason=reason):
        return override
    override.save(update_fields=[*lifetime.LIFETIME_COLUMNS, "updated_at"])
    after = lifetime.lifetime_snapshot(override)
    explicit = before["reason"] != after["reason"] or (
        expires is not None and before["expiresAt"] != after["expiresAt"])
    if gate.kind in ("owner", "system") and not explicit:
        return override  # the expiry moved forward with the owner's write: bookkeeping, shown on the write's row
    action, note = {"claim": (ChangeAction.CLAIM, "claimed"),
                    "take-over": (ChangeAction.TAKE_OVER, f"taken over from {before['owner']}")}.get(
        gate.kind, (ChangeAction.UPDATE, "lifetime changed"))
    record_change(actor=actor, action=action, obj=override, before=before, after=after, message=note)
    if gate.kind == "take-over":
        events.emit(events.OVERRIDE_TAKEN_OVER, override, actor=actor.name, previousOwner=before["owner"],
                    previous_owner_id=gate.previous_owner.pk)
    return override


def override_update(
    *, actor: Actor, override: ModulePullOverride, message: str = "", take_over: bool = False, **changes: Any
) -> ModulePullOverride:
    """Change an override's spec (and its `reason` / `expires`); nothing is written (no audit row, no apply) when
    nothing changes. Someone else's override: `lifetime.OwnershipConflict` unless `take_over`."""
    unknown = set(changes) - set(OVERRIDE_FIELDS) - set(LIFETIME_FIELDS)
    if unknown:
        raise TypeError(f"unknown override fields: {sorted(unknown)}")
    relisted = None
    if "source" in changes or "image_tag" in changes:
        target = changes.get("source", override.source)
        if isinstance(target, str):
            target = (override.source if target == override.source.name
                      else ModuleSource.objects.filter(name=target).first())
        if target != override.source or changes.get("image_tag", override.image_tag) != override.image_tag:
            # A new image reference must name an offered module: its source is listed again, if needed, now, before
            # the transaction.
            relisted = offers.relist_if_missing(override.name, target)
    return _override_update(actor=actor, override=override, message=message, take_over=take_over,
                            relisted=relisted, **changes)


@transaction.atomic
def _override_update(*, actor: Actor, override: ModulePullOverride, message: str, take_over: bool,
                     relisted: offers.Relisting | None, **changes: Any) -> ModulePullOverride:
    override = _lock_for_write(override, actor, take_over=take_over, expires=changes.pop("expires", None),
                               reason=changes.pop("reason", None))
    before = snapshot(override)
    old_ref = (override.source_id, override.image_tag)
    if "source" in changes:  # the same source again: the one read with the lock (no query)
        same = changes["source"] in (override.source, override.source.name)
        changes["source"] = _resolve_source(override.source if same else changes["source"])
    for field, value in changes.items():
        setattr(override, field, value)
    if not override.scan_interval:
        override.scan_interval = DEFAULT_SCAN_INTERVAL
    _full_clean(override, exclude=RESOLVED_OVERRIDE_KEYS)
    after = snapshot(override)
    if after == before:
        return override
    if (override.source_id, override.image_tag) != old_ref:
        offers.check_module_offered(override.name, override.source, relisted)
        override.reset_registry_view()
        enqueue.enqueue_check(override.pk)
    elif before["scanInterval"] != after["scanInterval"]:
        override.next_check_at = timezone.now()
    if _cr_part(before) != _cr_part(after):
        mark_desired_state_changed(override)
    override.save()
    record_change(actor=actor, action=ChangeAction.UPDATE, obj=override, before=before, after=after, message=message)
    events.emit(events.OVERRIDE_CHANGED, override, actor=actor.name, before=before, after=after)
    _after_commit_apply(override)
    return override


def _cr_part(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key not in PORTAL_ONLY_KEYS}


def _unchanged(override: ModulePullOverride, data: dict[str, Any]) -> bool:
    """Whether applying `data` would change nothing (read-only: no write lock taken)."""
    for field, value in data.items():
        if field not in OVERRIDE_FIELDS:
            return False  # the write path reports it
        current = override.source.name if field == "source" else getattr(override, field)
        if field == "source" and isinstance(value, ModuleSource):
            value = value.name
        if field == "scan_interval" and not value:
            value = DEFAULT_SCAN_INTERVAL
        if current != value:
            return False
    return True


def override_upsert(
    *, actor: Actor, name: str, data: dict[str, Any], message: str = "", take_over: bool = False
) -> tuple[ModulePullOverride, bool]:
    """Create or update the override of module `name` (the CI call); returns (override, created).

    Pipelines repeat the same upsert; a repeat by the owner that changes nothing returns without taking the write
    lock, only moving the expiry forward by the TTL.
    """
    require_module_scope(actor.user, name)
    existing = ModulePullOverride.objects.select_related("source").filter(name=name).first()
    if existing is None:
        if "source" not in data or "image_tag" not in data:
            missing = {f: "This field is required." for f in ("source", "image_tag") if f not in data}
            raise ValidationError(missing)
        return override_create(actor=actor, name=name, message=message, **data), True
    if _unchanged(existing, data) and lifetime.owner_bump(existing, actor):
        return existing, False
    # override_update locks the row and reads it again; a concurrent create of the same name fails on the unique
    # name (IntegrityError), and the caller repeats the upsert, which then updates.
    return override_update(actor=actor, override=existing, message=message, take_over=take_over, **data), False


@transaction.atomic
def override_delete(*, actor: Actor, override: ModulePullOverride, message: str = "", take_over: bool = False,
                    event: str = events.OVERRIDE_DELETED) -> None:
    """Give the module back: the CR is deleted by the apply; the row and its history are kept."""
    override = _lock_for_write(override, actor, take_over=take_over)
    before = snapshot(override)
    override.deleted_at = timezone.now()
    override.next_check_at = None
    mark_desired_state_changed(override)
    override.save()
    record_change(actor=actor, action=ChangeAction.DELETE, obj=override, before=before, after=None, message=message)
    events.emit(event, override, actor=actor.name, rollback=override.rollback)
    _after_commit_apply(override)


SCHEDULER = Actor.system(ChangeContext.SCHEDULER)


@transaction.atomic
def override_expire(*, pk: int, now=None) -> bool:
    """The scheduler deletes an override whose expiry has passed (audited "expired", honouring rollback); False
    when its expiry moved meanwhile or it is gone."""
    now = now or timezone.now()
    override = ModulePullOverride.objects.select_for_update().filter(pk=pk, expires_at__lte=now).first()
    if override is None:
        return False
    override_delete(actor=SCHEDULER, override=override, message="expired", event=events.OVERRIDE_EXPIRED)
    return True


@transaction.atomic
def override_renew(
    *, actor: Actor, override: ModulePullOverride, force: bool = False, message: str = "",
    check_registry: bool = True, take_over: bool = False,
) -> ModulePullOverride:
    """Ask for a check now: the portal checks the registry at once and the CR gets a fresh `renew`
    annotation (plus `modules.deckhouse.io/renew: "true"` when forced, to redeploy an unchanged digest).
    `check_registry=False`: the portal has just read the digest (an auto-renew), only the cluster is asked.
    The owner's renew moves the expiry forward by the TTL."""
    override = _lock_for_write(override, actor, take_over=take_over)
    now = timezone.now()
    before = snapshot(override)
    override.renew_requested_at = now
    override.renew_force = override.renew_force or force
    if check_registry:
        override.next_check_at = now
    mark_desired_state_changed(override)
    override.save()
    after = {**snapshot(override), "renew": now.isoformat(), "force": bool(force),
             "expiresAt": override.expires_at.isoformat() if override.expires_at else None}
    record_change(actor=actor, action=ChangeAction.RENEW, obj=override, before=before, after=after,
                  message=message, force=True)
    _after_commit_apply(override)
    if check_registry:
        enqueue.enqueue_check(override.pk)
    return override
