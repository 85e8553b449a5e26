"""The scheduler's side of override lifetime: expiry and reminders (the rule itself is `overrides.lifetime`).

`dispatch_periodic_work()` runs in the dispatcher every second (`overrides.polling.dispatcher`): when an expiry or a
reminder is due it enqueues `overrides.tasks.expire_overrides`, which runs `expire_due()`: each expired override is
deleted through `services.override_expire` (the same delete service as any other: audited with context scheduler
and message "expired", honouring rollback), and each reminder due is sent once (`override.expiring`). It also
enqueues the notification retries that are due (`overrides.notifications.delivery.enqueue_due`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.utils import timezone

from overrides import services
from overrides.lifetime import reminder_lead
from overrides.models import ModulePullOverride
from overrides.notifications import delivery, events

logger = logging.getLogger("overrides.expiry")

EXPIRE_BATCH = 100
def work_due(now: datetime | None = None) -> bool:
    """Whether an expiry or a reminder is due (one cheap query, asked by the dispatcher every few seconds)."""
    now = now or timezone.now()
    live = ModulePullOverride.objects.filter(expires_at__isnull=False)
    return (live.filter(expires_at__lte=now).exists()
            or live.filter(expires_at__lte=now + reminder_lead(), reminded_at__isnull=True).exists())


def expire_due(now: datetime | None = None) -> dict[str, int]:
    """Delete the overrides whose expiry has passed (through the delete service, as the scheduler, message
    "expired", honouring rollback) and send the reminders that are due. Safe to run twice at once."""
    now = now or timezone.now()
    expired = reminded = 0
    for pk in ModulePullOverride.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:EXPIRE_BATCH]:
        try:
            expired += bool(services.override_expire(pk=pk, now=now))
        except Exception:  # one bad row must not stop the others; it is tried again next time
            logger.exception("expiring override %s failed", pk)
    due = ModulePullOverride.objects.filter(expires_at__gt=now, expires_at__lte=now + reminder_lead(),
                                            reminded_at__isnull=True).select_related("owner", "source")
    for override in due[:EXPIRE_BATCH]:
        # Compare-and-swap: one reminder per expiry, whoever else runs this at the same time.
        if ModulePullOverride.objects.filter(pk=override.pk, reminded_at__isnull=True,
                                             expires_at=override.expires_at).update(reminded_at=now):
            events.emit(events.OVERRIDE_EXPIRING, override, expiresAt=override.expires_at.isoformat())
            reminded += 1
    return {"expired": expired, "reminded": reminded}


EXPIRY_TASK = "overrides.tasks.expire_overrides"
EXPIRY_REPEAT = 5.0  # seconds: while work is due, an expiry task is enqueued at most this often
_expiry_enqueued_at = 0.0


def dispatch_periodic_work() -> None:
    """Called by the dispatcher every second: enqueue the expiry task when something is due (a duplicate is
    harmless: `expire_due` is a compare-and-swap), and the notification retries that are due."""
    global _expiry_enqueued_at
    from django_q.tasks import async_task

    mono = time.monotonic()
    if mono - _expiry_enqueued_at >= EXPIRY_REPEAT and work_due():
        _expiry_enqueued_at = mono
        async_task(EXPIRY_TASK, group="expiry", q_options={"task_name": "expire overrides"})
    delivery.enqueue_due()
