"""The django-q2 side of notifications: fan-out, delivery attempts, retries with backoff.

- `fan_out()` claims the events not fanned out yet, finds the channels whose subscriptions match each (plus the
  owner's personal channels, or their e-mail address, for their own failures) and makes one `Delivery` each,
  enqueuing `overrides.tasks.deliver_notifications` for them (one task per channel and batch).
- `deliver(pk)` makes one attempt and records it (`DeliveryAttempt`: status code, error, time); a timeout, a
  connection failure or a 5xx schedules the next attempt after a doubling backoff (`PORTAL_NOTIFY_BACKOFF`, at most
  `PORTAL_NOTIFY_RETRIES` attempts in all); any 2xx is success; other answers fail at once. The channel shows its
  last failure. A receiver that always fails costs one short task per attempt and never holds the others.
- `enqueue_due()` (from the dispatcher, every second) enqueues the retries that are due and picks up events and
  deliveries whose task was lost. Every claim is a compare-and-swap, so a task that runs twice sends once.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from overrides.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    NotificationChannel,
    NotificationEvent,
    NotificationSubscription,
    SubscriptionScope,
)
from overrides.notifications import channels, events

logger = logging.getLogger("overrides.notifications")

DELIVER_TASK = "overrides.tasks.deliver_notifications"
FAN_OUT_BATCH = 500
TASK_BATCH = 50  # deliveries of one channel per task
TASK_THREADS = 4  # concurrent attempts inside one task
DELIVERY_NICE = 10
LOST_TASK_GRACE = timedelta(seconds=60)  # a delivery (or event) not taken by its task by then is enqueued again
BACKOFF_CAP = 600.0
FAN_OUT_EVERY = 1.0  # seconds between two fan-out tasks enqueued by the sweep
_fan_out_enqueued_at = 0.0
PRIVATE_KEYS = ("owner_id", "source_id", "previous_owner_id")
SUCCESS_STAMP_EVERY = timedelta(seconds=5)


def _enqueue(deliveries: list[tuple[int, int | None]]) -> None:
    """One task per channel and `TASK_BATCH` deliveries: a receiver that hangs holds only its own channel's task."""
    from django_q.tasks import async_task

    by_channel: dict[int | None, list[int]] = {}
    for pk, channel_id in deliveries:
        by_channel.setdefault(channel_id, []).append(pk)
    for pks in by_channel.values():
        for i in range(0, len(pks), TASK_BATCH):
            async_task(DELIVER_TASK, pks[i:i + TASK_BATCH], group="notify",
                       q_options={"task_name": "deliver notifications"})


# --- fan-out -----------------------------------------------------------------------------------------------------


def _matches(subscription: NotificationSubscription, event: NotificationEvent) -> bool:
    if subscription.event_types and event.event_type not in subscription.event_types:
        return False
    payload = event.payload
    scope = subscription.scope
    if scope == SubscriptionScope.SOURCE:
        return subscription.source_id is not None and payload.get("source_id") == subscription.source_id
    if scope == SubscriptionScope.MODULES:
        patterns = [p.strip() for p in subscription.module_patterns.replace(" ", ",").split(",") if p.strip()]
        return any(fnmatch.fnmatchcase(event.override_name, p) for p in patterns)
    if scope == SubscriptionScope.MINE:
        owner = subscription.channel.user_id
        return owner is not None and owner in (payload.get("owner_id"), payload.get("previous_owner_id"))
    return True


def _owner_to_tell(event: NotificationEvent) -> int | None:
    """Who hears of this event by default: the previous owner of a take-over, the owner of a failure."""
    if event.event_type not in events.OWNER_EVENTS:
        return None
    if event.event_type == events.OVERRIDE_TAKEN_OVER:
        return event.payload.get("previous_owner_id")
    return event.payload.get("owner_id")


def targets(event: NotificationEvent, subscriptions: list[NotificationSubscription],
            personal: dict[int, list[NotificationChannel]]) -> list[tuple[NotificationChannel | None, str]]:
    """(channel, e-mail address) pairs for one event: each matching channel once, then the owner's default."""
    chosen: dict[int, NotificationChannel] = {}
    for subscription in subscriptions:
        if subscription.channel_id not in chosen and _matches(subscription, event):
            chosen[subscription.channel_id] = subscription.channel
    result: list[tuple[NotificationChannel | None, str]] = [(c, "") for c in chosen.values()]
    owner_id = _owner_to_tell(event)
    if owner_id is not None and not any(c.user_id == owner_id for c in chosen.values()):
        own = [c for c in personal.get(owner_id, []) if c.own_failures]
        if own:
            result.extend((c, "") for c in own)
        else:
            from django.contrib.auth import get_user_model

            email = get_user_model().objects.filter(pk=owner_id).values_list("email", flat=True).first()
            if email:
                result.append((None, email))
    return result


class _Raced(Exception):
    """Another fan-out claimed some of this batch meanwhile: roll back and read again."""


def _complete_payloads(batch: list[NotificationEvent]) -> list[NotificationEvent]:
    """Events recorded by the poller carry only the digest: add the override's source, owner and reason (in
    memory; returns the events to save)."""
    from overrides.models import ModulePullOverride

    bare = [e for e in batch if "source_id" not in e.payload and e.override_id]
    if not bare:
        return []
    rows = {r["pk"]: r for r in ModulePullOverride.all_objects.filter(pk__in={e.override_id for e in bare}).values(
        "pk", "source_id", "source__name", "owner_id", "owner__username", "reason", "image_tag")}
    for event in bare:
        row = rows.get(event.override_id)
        if row is not None:
            event.payload = {"source": row["source__name"], "source_id": row["source_id"], "owner_id": row["owner_id"],
                             "owner": row["owner__username"], "reason": row["reason"], "imageTag": row["image_tag"],
                             **event.payload}
    return bare


def fan_out() -> int:
    """Deliveries for the events not fanned out yet; returns how many deliveries were made.

    Everything is read and matched first; the write transaction (SQLite: the database's one writer, which the
    poller needs too) only claims the batch, completes the payloads and creates the deliveries."""
    made = 0
    while True:
        batch = list(NotificationEvent.objects.filter(fanned_out_at__isnull=True).order_by("id")[:FAN_OUT_BATCH])
        if not batch:
            return made
        completed = _complete_payloads(batch)
        subscriptions = list(NotificationSubscription.objects.filter(channel__enabled=True).select_related("channel"))
        personal: dict[int, list[NotificationChannel]] = {}
        for channel in NotificationChannel.objects.filter(enabled=True, user__isnull=False):
            personal.setdefault(channel.user_id, []).append(channel)
        now = timezone.now()
        rows = [Delivery(event=event, channel=channel, email_to=email, next_attempt_at=now + LOST_TASK_GRACE,
                         enqueued_at=now)
                for event in batch for channel, email in targets(event, subscriptions, personal)]
        try:
            with transaction.atomic():
                ids = [event.id for event in batch]
                if NotificationEvent.objects.filter(id__in=ids, fanned_out_at__isnull=True).update(
                        fanned_out_at=now) != len(ids):
                    raise _Raced
                if completed:
                    NotificationEvent.objects.bulk_update(completed, ["payload"], batch_size=FAN_OUT_BATCH)
                created = Delivery.objects.bulk_create(rows, batch_size=FAN_OUT_BATCH)
                made_now = [(d.pk, d.channel_id) for d in created if d.pk is not None]
                if len(made_now) != len(created):  # a backend that does not return ids: read them back
                    made_now = list(Delivery.objects.filter(event_id__in=ids, attempts=0)
                                    .values_list("pk", "channel_id"))
                transaction.on_commit(lambda made_now=made_now: _enqueue(made_now))
        except _Raced:
            continue
        made += len(made_now)


# --- one attempt -------------------------------------------------------------------------------------------------


def envelope(event: NotificationEvent) -> dict[str, Any]:
    """The JSON an event is sent as (the generic webhook's body; the other kinds render it)."""
    details = {k: v for k, v in event.payload.items() if k not in PRIVATE_KEYS}
    return {"id": event.pk, "type": event.event_type, "time": event.created_at.isoformat(),
            "override": event.override_name, "summary": events.summary(event.event_type, event.payload),
            "details": details}


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: PORTAL_NOTIFY_BACKOFF, doubling, at most 10 minutes."""
    return min(BACKOFF_CAP, settings.PORTAL_NOTIFY_BACKOFF * 2 ** max(0, attempt - 1))


def _claim(pks: list[int]) -> list[Delivery]:
    """Take the deliveries among `pks` that were enqueued (`enqueued_at`) and that no other run holds, in one write
    transaction: each claim is a compare-and-swap on `attempts` that clears `enqueued_at` and sets a lease, so a
    second task for the same delivery finds it taken, and none runs before its retry is due."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.PORTAL_NOTIFY_TIMEOUT * 3 + 30)
    rows = list(Delivery.objects.filter(pk__in=pks, state=DeliveryState.PENDING, enqueued_at__isnull=False)
                .select_related("event", "channel"))
    taken = []
    with transaction.atomic():
        for row in rows:
            if Delivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING, attempts=row.attempts,
                                       enqueued_at__isnull=False).update(attempts=F("attempts") + 1,
                                                                         enqueued_at=None, next_attempt_at=lease):
                row.attempts += 1
                taken.append(row)
    return taken


def _send(row: Delivery) -> tuple[channels.SendResult, int]:
    """One attempt (no database: pool threads only talk to the receiver)."""
    channel = row.channel
    kind, target = (channel.kind, channel.target) if channel else ("email", row.email_to)
    started = time.monotonic()
    try:
        result = channels.SENDERS[kind](target, channel.secret if channel else "", envelope(row.event))
    except Exception as exc:  # a sender bug must still end in a recorded attempt, never with the URL in it
        # No traceback: an exception's text may hold the URL, which never goes to a log.
        logger.error("notification delivery %s: the %s sender raised %s", row.pk, kind, type(exc).__name__)
        result = channels.SendResult(False, None, f"unexpected error ({type(exc).__name__})")
    return result, int((time.monotonic() - started) * 1000)


def _lower_priority() -> None:
    # Attempts yield the CPU to the poller (Linux: per thread, and these threads end with the task).
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DELIVERY_NICE)
    except (AttributeError, OSError):
        pass


def deliver_many(pks: list[int]) -> dict[int, str]:
    """The task: one attempt of each delivery among `pks` not held elsewhere, `TASK_THREADS` at once; the claims and
    the results are written in one transaction each (the poller shares SQLite's one writer). Returns pk → state."""
    from concurrent.futures import ThreadPoolExecutor

    taken = _claim(pks)
    if not taken:
        return {}
    if len(taken) == 1:
        results = [_send(taken[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(TASK_THREADS, len(taken)), initializer=_lower_priority) as pool:
            results = list(pool.map(_send, taken))
    with transaction.atomic():
        for row, (result, duration_ms) in zip(taken, results, strict=True):
            _record(row, result, duration_ms)
    return {row.pk: row.state for row in taken}


def deliver(pk: int) -> str:
    """One attempt of delivery `pk`; returns its state afterwards ("done" when it is finished or held elsewhere)."""
    return deliver_many([pk]).get(pk, "done")


@transaction.atomic
def _record(delivery: Delivery, result: channels.SendResult, duration_ms: int) -> None:
    """The attempt, the delivery's new state and the channel's health, in one write transaction."""
    now = timezone.now()
    DeliveryAttempt.objects.create(delivery=delivery, at=now, status_code=result.status_code,
                                   error=result.error[:500], duration_ms=duration_ms)
    if result.ok:
        delivery.state, delivery.next_attempt_at, delivery.finished_at, delivery.last_error = (
            DeliveryState.SUCCEEDED, None, now, "")
    elif result.retry and delivery.attempts < settings.PORTAL_NOTIFY_RETRIES:
        delivery.next_attempt_at = now + timedelta(seconds=backoff(delivery.attempts))
        delivery.last_error = result.error[:500]
    else:
        delivery.state, delivery.next_attempt_at, delivery.finished_at = DeliveryState.FAILED, None, now
        delivery.last_error = result.error[:500]
    delivery.save(update_fields=["state", "next_attempt_at", "finished_at", "last_error"])
    if delivery.channel_id is None:
        return
    channels_row = NotificationChannel.objects.filter(pk=delivery.channel_id)
    if result.ok:
        # Healthy channels are touched at most every few seconds (a burst is hundreds of deliveries).
        channels_row.filter(Q(failures_in_a_row__gt=0) | Q(last_success_at__isnull=True)
                            | Q(last_success_at__lt=now - SUCCESS_STAMP_EVERY)).update(
            last_success_at=now, failures_in_a_row=0)
    else:
        channels_row.update(last_failure_at=now, last_error=result.error[:500],
                            failures_in_a_row=F("failures_in_a_row") + 1)


# --- the sweep ---------------------------------------------------------------------------------------------------


def enqueue_due(now=None) -> int:
    """Retries that are due, and deliveries or events whose task was lost: enqueue them (claimed first, so two
    sweeps never enqueue one twice). Returns how many deliveries were enqueued."""
    now = now or timezone.now()
    due = list(Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
               .values_list("pk", "next_attempt_at", "channel_id")[:200])
    taken = []
    for pk, at, channel_id in due:
        if Delivery.objects.filter(pk=pk, next_attempt_at=at).update(next_attempt_at=now + LOST_TASK_GRACE,
                                                                     enqueued_at=now):
            taken.append((pk, channel_id))
    if taken:
        _enqueue(taken)
    enqueued = len(taken)
    global _fan_out_enqueued_at
    mono = time.monotonic()
    waiting = NotificationEvent.objects.filter(fanned_out_at__isnull=True)
    if mono - _fan_out_enqueued_at >= FAN_OUT_EVERY and waiting.exists():
        # Every event is fanned out from here while a dispatcher runs (the services and the poller enqueue no
        # task then), and any whose task was lost: one task a second at most.
        _fan_out_enqueued_at = mono
        events.enqueue_fan_out()
    return enqueued
