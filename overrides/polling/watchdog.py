"""The watchdog: a django-q2 Schedule that keeps one dispatcher running.

django-q2 looks at its Schedules only about every 30 s and a `MINUTES` schedule fires at most once a minute
(croniter, needed for cron schedules, is not installed), so a Schedule cannot drive 15 s cadences by itself.
Instead `WATCHDOG` fires `overrides.tasks.run_dispatcher` every minute. A dispatcher holds the lease
(`overrides.polling.lease`), claims due work for about `RUN_FOR` seconds and then enqueues its own successor,
which takes the lease over from it without a gap. When the chain breaks (a qcluster died with the lease, the
queue was purged) a qcluster's standby thread takes the lease over within about a second
(`overrides.polling.standby`); the watchdog is the last resort beside it: its run finds a live holder and returns
at once, and starts a new chain only when no standby did.

The Schedule is registered by the migration `overrides/0002_poller_schedules`; `ensure_schedules()` makes it and
the lease row again (the tests call it after a flush; safe to call any time).
"""

from __future__ import annotations

from overrides.polling.lease import ensure_lease

DISPATCHER_TASK = "overrides.tasks.run_dispatcher"
WATCHDOG = "mpo-portal: dispatcher watchdog"


def ensure_watchdog(schedule_model=None) -> None:
    """Create (or repair) the watchdog Schedule. `schedule_model` is the historical model in a migration;
    django-q2's `Schedule` otherwise."""
    if schedule_model is None:
        from django_q.models import Schedule as schedule_model
    minutes = schedule_model.MINUTES if hasattr(schedule_model, "MINUTES") else "I"
    schedule_model.objects.update_or_create(
        name=WATCHDOG,
        defaults={"func": DISPATCHER_TASK, "schedule_type": minutes, "minutes": 1, "repeats": -1, "args": None,
                  "kwargs": None},
    )


def ensure_schedules() -> None:
    """The watchdog Schedule and the lease row (after a test flush, or to repair them)."""
    ensure_watchdog()
    ensure_lease()
