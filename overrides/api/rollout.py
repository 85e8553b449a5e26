"""Waiting for a rollout: block until the cluster runs a digest, with one clear outcome.

A pipeline pushes an image, upserts the override, renews it, then asks the portal to wait until the cluster
reports the new digest in `status.imageDigest`. The wait is a long poll in the server: the row is re-read
every POLL_INTERVAL by `overrides.api.rollout_waits` (the cluster read-back and the registry check write it)
until the outcome is final or the
time is up. Outcomes:

- `rolled-out` (200): the verdict (`overrides.verdict`) is `running` on the wanted digest: the cluster reports
  it and the Module became Ready on it.
- `failed` (409): the verdict is `download-failed`, `deploy-failed` or `blocked` about the wanted digest, reported
  after the current spec or renew was applied (an older failure never fails a new wait); the body carries the
  verdict, its reason and the Module's phase.
- `sync-off` (409): no cluster is configured; nothing will ever roll out.
- `deleted` (409): the override was deleted while waiting.
- `timeout` (408): none of these before the timeout; the body says the current verdict, what the cluster runs
  and what was wanted.

Without an explicit digest the wanted one is the portal's registry digest, but only once the portal has
checked the registry after the override's last change or renew: otherwise a pipeline that pushed a new image
could be told "rolled out" for the old digest that both sides still agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from overrides import verdict as verdicts
from overrides.cluster.state import SYNC_OFF_MESSAGE
from overrides.models import ModulePullOverride, ObjectChange, SyncState

POLL_INTERVAL = 0.5

ROLLED_OUT, WAITING, TIMEOUT = "rolled-out", "waiting", "timeout"
FAILED, SYNC_OFF, DELETED = "failed", "sync-off", "deleted"
HTTP_STATUS = {ROLLED_OUT: 200, TIMEOUT: 408, FAILED: 409, SYNC_OFF: 409, DELETED: 409}


@dataclass
class Outcome:
    state: str
    detail: str
    wanted: str | None
    override: ModulePullOverride
    waited: float = 0.0
    verdict: verdicts.Verdict | None = None

    @property
    def module_phase(self) -> str:
        module = verdicts.cluster_module_of(self.override)
        return module.phase if module is not None else ""

    @property
    def final(self) -> bool:
        return self.state != WAITING

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.state, 408)


def is_failure_message(message: str) -> bool:
    """Messages with which the controller gives up on this image until something changes."""
    return verdicts.message_verdict(message) is not None


def status_is_current(override: ModulePullOverride) -> bool:
    """The controller wrote its status after the portal applied the current spec (so it is about this spec).

    The controller rewrites `updatedAt` with every status write, also when it re-reports the same error.
    `updatedAt` has whole seconds, so it is compared with the apply time truncated to the second.
    """
    return (
        override.sync_state == SyncState.SYNCED
        and override.synced_at is not None
        and override.status_updated_at is not None
        and override.status_updated_at >= override.synced_at.replace(microsecond=0)
    )


def last_change_time(override: ModulePullOverride) -> datetime | None:
    """When the override's spec last changed or was renewed (its newest audit record)."""
    return (
        ObjectChange.objects.filter(object_type=override._meta.model_name, object_id=override.pk)
        .order_by("-time").values_list("time", flat=True).first()
    )


def wanted_digest(override: ModulePullOverride, requested: str | None, since: datetime | None) -> str | None:
    """The digest to wait for: the requested one, else the registry's as checked after the last change."""
    if requested:
        return requested
    checked = override.registry_checked_at
    if not override.registry_digest or override.registry_error:
        return None
    if since is not None and (checked is None or checked < since):
        return None
    return override.registry_digest


def failure_is_current(override: ModulePullOverride, verdict: verdicts.Verdict, wanted: str | None) -> bool:
    """A failing verdict is about the wanted digest and was reported after the current spec or renew was applied.

    MPO messages: the controller's status write is newer than the apply (`status_is_current`). Module and
    ModuleConfig failures: the module reports the wanted digest and the portal saw the failure after the apply.
    """
    if not verdict.module:
        return status_is_current(override)
    applied = override.synced_at
    return (override.sync_state == SyncState.SYNCED and applied is not None and verdict.since is not None
            and verdict.since >= applied and wanted is not None and verdict.digest == wanted)


def evaluate(override: ModulePullOverride, requested: str | None) -> Outcome:
    """The rollout's state now, from the row as it is, through the override's verdict."""
    wanted = wanted_digest(override, requested, last_change_time(override))
    verdict = verdicts.override_verdict(override, wanted=wanted)
    if override.deleted_at is not None:
        return Outcome(DELETED, f'The override "{override.name}" was deleted.', wanted, override, verdict=verdict)
    if wanted and verdict.state == verdicts.RUNNING and override.status_image_digest == wanted:
        return Outcome(ROLLED_OUT, f"The cluster runs {wanted}: {verdict.reason}", wanted, override, verdict=verdict)
    if override.sync_state == SyncState.OFF:
        return Outcome(SYNC_OFF, f"{SYNC_OFF_MESSAGE} Nothing will roll out.", wanted, override, verdict=verdict)
    if verdict.failed and failure_is_current(override, verdict, wanted):
        phase = f" (Module phase: {verdicts.cluster_module_of(override).phase})" if verdict.module else ""
        return Outcome(FAILED, f"{verdict.state}: {verdict.reason}{phase}", wanted, override, verdict=verdict)
    return Outcome(WAITING, f"Verdict: {verdict.state} ({verdict.summary}). {_waiting_detail(override, wanted)}",
                   wanted, override, verdict=verdict)


def _waiting_detail(override: ModulePullOverride, wanted: str | None) -> str:
    running = override.status_image_digest or "no digest yet"
    if wanted is None:
        if override.registry_error:
            return f"The portal's registry check failed: {override.registry_error}"
        return f"The portal has not checked the registry since the last change yet; the cluster runs {running}."
    parts = [f"The cluster runs {running}, wanted {wanted}."]
    if override.sync_state != SyncState.SYNCED:
        parts.append(f"Sync: {override.sync_state}. {override.sync_message}".strip())
    if override.status_message:
        parts.append(f"The cluster says: {override.status_message}")
    return " ".join(parts)
