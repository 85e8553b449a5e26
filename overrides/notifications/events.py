"""Event types and `emit()`: an event is a row written in the transaction of the change it reports.

The fan-out task is enqueued once per transaction after it commits; the poller's `build.detected` events (and any
whose fan-out task was lost) are fanned out by the dispatcher's sweep, `delivery.enqueue_due()`, once a second.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from overrides import verdict as rollout_verdict
from overrides.models import EventType, ModulePullOverride, NotificationEvent

logger = logging.getLogger("overrides.notifications")

BUILD_DETECTED = EventType.BUILD_DETECTED.value
ROLLOUT_SUCCEEDED = EventType.ROLLOUT_SUCCEEDED.value
ROLLOUT_FAILED = EventType.ROLLOUT_FAILED.value
DOWNLOAD_FAILED = EventType.DOWNLOAD_FAILED.value
BLOCKED = EventType.BLOCKED.value
DRIFT_DETECTED = EventType.DRIFT_DETECTED.value
OVERRIDE_CREATED = EventType.OVERRIDE_CREATED.value
OVERRIDE_CHANGED = EventType.OVERRIDE_CHANGED.value
OVERRIDE_DELETED = EventType.OVERRIDE_DELETED.value
OVERRIDE_EXPIRING = EventType.OVERRIDE_EXPIRING.value
OVERRIDE_EXPIRED = EventType.OVERRIDE_EXPIRED.value
OVERRIDE_TAKEN_OVER = EventType.OVERRIDE_TAKEN_OVER.value

# Events derived from observed state, which can flap: at most one per (override, type) per repeat window.
FLAPPING = {ROLLOUT_SUCCEEDED, ROLLOUT_FAILED, DOWNLOAD_FAILED, BLOCKED, DRIFT_DETECTED}
FAILURES = {ROLLOUT_FAILED, DOWNLOAD_FAILED, BLOCKED}
# Sent to the override's owner by default (their personal channels, else their e-mail address).
OWNER_EVENTS = {ROLLOUT_FAILED, DOWNLOAD_FAILED, BLOCKED, OVERRIDE_EXPIRING, OVERRIDE_EXPIRED, OVERRIDE_TAKEN_OVER}
FAN_OUT_TASK = "overrides.tasks.fan_out_notifications"

SUMMARIES = {
    BUILD_DETECTED: "new build {digest} of {name} ({imageRef})",
    ROLLOUT_SUCCEEDED: "{name} runs {digest} in the cluster",
    ROLLOUT_FAILED: "{name}: rollout failed: {message}",
    DOWNLOAD_FAILED: "{name}: the cluster cannot download the image: {message}",
    BLOCKED: "{name}: blocked: {message}",
    DRIFT_DETECTED: "{name} was changed outside the portal",
    OVERRIDE_CREATED: "{name} overridden with {imageRef} by {actor}",
    OVERRIDE_CHANGED: "{name} changed by {actor}",
    OVERRIDE_DELETED: "{name} deleted by {actor}",
    OVERRIDE_EXPIRING: "{name} expires at {expiresAt}",
    OVERRIDE_EXPIRED: "{name} expired and was deleted",
    OVERRIDE_TAKEN_OVER: "{name} taken over by {actor} from {previousOwner}",
}


def summary(event_type: str, payload: dict[str, Any]) -> str:
    """One line in words, for chat messages and e-mail subjects."""
    values = {k: v for k, v in payload.items() if isinstance(v, str | int | float | bool)}
    try:
        return SUMMARIES.get(event_type, "{name}: " + event_type).format_map(_Missing(values))
    except (ValueError, IndexError):
        return f"{payload.get('name', '')}: {event_type}"


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def enabled() -> bool:
    return bool(settings.PORTAL_NOTIFICATIONS)


def _payload(event_type: str, override, details: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "name": override.name,
        "source": override.source.name if override.source_id else "",
        "source_id": override.source_id,
        "imageTag": override.image_tag,
        "imageRef": f"{override.source.repo}/{override.name}:{override.image_tag}" if override.source_id else "",
        "owner": override.owner.get_username() if override.owner_id else None,
        "owner_id": override.owner_id,
        "reason": override.reason,
    }
    payload.update(details)
    return payload


def _in_repeat_window(event_type: str, override, now, details: dict[str, Any]) -> bool:
    """Whether a flapping event was sent for this override within the window (a success: for this digest)."""
    if event_type not in FLAPPING:
        return False
    since = now - settings.PORTAL_NOTIFY_REPEAT_WINDOW
    recent = NotificationEvent.objects.filter(override=override, event_type=event_type, created_at__gte=since)
    if event_type != ROLLOUT_SUCCEEDED:
        return recent.exists()
    # A success repeats only for the same digest, and the recovery from a failure that was sent always goes out.
    last = recent.filter(payload__digest=details.get("digest", "")).order_by("-created_at", "-id").first()
    if last is None:
        return False
    failures = NotificationEvent.objects.filter(override=override, event_type__in=FAILURES, id__gt=last.id)
    return not failures.exists()


def emit(event_type: str, override, *, dedup_key: str | None = None, **details: Any) -> NotificationEvent | None:
    """Record an event of `override` (inside the caller's transaction) and fan it out after commit. None when
    notifications are off, the event repeats within its window, or `dedup_key` was emitted before."""
    if not enabled():
        return None
    now = timezone.now()
    if _in_repeat_window(event_type, override, now, details):
        return None
    event = NotificationEvent(event_type=event_type, override=override, override_name=override.name,
                              dedup_key=dedup_key, payload=_payload(event_type, override, details), created_at=now)
    if dedup_key is None:
        event.save()  # nothing unique to collide with: no savepoint needed
    else:
        try:
            with transaction.atomic():
                event.save()
        except IntegrityError:
            return None  # this digest (dedup_key) was reported already
    schedule_fan_out()
    return event


def enqueue_fan_out() -> None:
    """One fan-out task now (the dispatcher's sweep calls this directly)."""
    from django_q.tasks import async_task

    try:
        async_task(FAN_OUT_TASK, group="notify", q_options={"task_name": "fan out notifications"})
    except Exception:  # a broker hiccup loses nothing: the sweep fans out events left behind
        logger.exception("enqueueing the notification fan-out failed; the sweep will take the events")


def _fan_out_after_commit() -> None:
    from overrides.polling.lease import dispatcher_running

    if not dispatcher_running():  # else its sweep (`delivery.enqueue_due`, every second) fans the events out
        enqueue_fan_out()


def schedule_fan_out() -> None:
    """One fan-out task per transaction, however many events it records."""
    if connection.in_atomic_block and any(func is _fan_out_after_commit for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_fan_out_after_commit)


def emit_build_detected(override_pk: int, *, name: str, digest: str, previous: str, reference: str) -> None:
    """The registry shows a new digest for an override (once per digest, whoever checks it). Called in the poller's
    write-back, so it is one INSERT OR IGNORE and nothing else: the fan-out adds the override's owner and source."""
    if not enabled():
        return
    event = NotificationEvent(event_type=BUILD_DETECTED, override_id=override_pk, override_name=name,
                              dedup_key=f"build:{override_pk}:{digest}"[:200], created_at=timezone.now(),
                              payload={"name": name, "digest": digest, "previousDigest": previous,
                                       "imageRef": reference})
    NotificationEvent.objects.bulk_create([event], ignore_conflicts=True)
    # No task per write-back: the dispatcher's sweep (`delivery.enqueue_due`, every second) fans these out.


# --- rollout events from the rollout verdict the read-back leads to ----------------------------------------------

ROLLOUT_EVENTS = (ROLLOUT_SUCCEEDED, ROLLOUT_FAILED, DOWNLOAD_FAILED, BLOCKED)


def emit_verdict_transitions(override_pks) -> int:
    """The read-back mirrored new MPO status or Module state for `override_pks`: one event where the rollout verdict
    (`overrides.verdict`) changed from what the last rollout event said. `running` -> rollout.succeeded (once per
    digest, and always after a failure: the recovery), `deploy-failed` -> rollout.failed, `download-failed` ->
    download.failed, `blocked` -> blocked (the same failure again: nothing); other states emit nothing. The repeat
    window of `emit()` applies on top. Returns the number of events recorded."""
    event_of = {rollout_verdict.RUNNING: ROLLOUT_SUCCEEDED, rollout_verdict.DEPLOY_FAILED: ROLLOUT_FAILED,
                rollout_verdict.DOWNLOAD_FAILED: DOWNLOAD_FAILED, rollout_verdict.BLOCKED: BLOCKED}
    if not enabled() or not override_pks:
        return 0
    now, recorded = timezone.now(), 0
    rows = rollout_verdict.with_verdict_inputs(
        ModulePullOverride.objects.select_related("source", "owner").filter(pk__in=list(override_pks)))
    for override in rows:
        verdict = rollout_verdict.override_verdict(override, now)
        event_type = event_of.get(verdict.state)
        if event_type is None:
            continue
        last = (NotificationEvent.objects.filter(override=override, event_type__in=ROLLOUT_EVENTS)
                .order_by("-created_at", "-id").values_list("event_type", "payload").first())
        if last is not None and last[0] == event_type and (
                event_type != ROLLOUT_SUCCEEDED or (last[1] or {}).get("digest") == verdict.digest):
            continue
        message = override.status_message if not verdict.module else verdict.reason
        about = {"state": verdict.state, "summary": verdict.summary[:200], "reason": verdict.reason[:2000]}
        if emit(event_type, override, digest=verdict.digest, message=(message or verdict.summary)[:500],
                verdict=about):
            recorded += 1
    return recorded
