"""django-q2 entry points: thin functions taking primary keys. Their dotted paths are stored in Schedule and Task
rows, so they stay here whatever moves behind them.

Tasks load the row as it is when they run (level-triggered), so a task that runs late, twice or after a newer one
still converges on the current desired state. The after-commit enqueue helpers are in `overrides.enqueue`.
"""

from overrides import expiry
from overrides.cluster import readback, sync
from overrides.notifications import delivery
from overrides.polling import checks, dispatcher


def apply_override(pk: int) -> None:
    sync.apply_override(pk)


def apply_source(pk: int) -> None:
    sync.apply_source(pk)


def check_override(pk: int) -> str | None:
    """Check an override that was made due now (renew, new tag, webhook). It claims the row like the dispatcher,
    so whichever of the two comes first checks it and the other does nothing."""
    return checks.check_override(pk, only_if_due=True)


def discover_source(pk: int) -> str | None:
    return checks.discover_source(pk, only_if_due=True)


def run_dispatcher(successor: bool = False) -> dict:
    """The poller's dispatcher (started by the watchdog Schedule, then by itself: see overrides.polling.dispatcher)."""
    return dispatcher.run_dispatcher(successor=successor)


def read_back_cluster() -> list[str]:
    """Mirror the cluster into the portal once (status, imports, changes and deletions made in the cluster)."""
    return readback.read_back().lines()


def expire_overrides() -> dict:
    """Delete the overrides whose expiry passed and send the reminders due (enqueued by the dispatcher)."""
    return expiry.expire_due()


def fan_out_notifications() -> int:
    """Turn recorded events into deliveries for the matching channels (enqueued after the events commit)."""
    return delivery.fan_out()


def deliver_notifications(pks: list[int]) -> dict:
    """One attempt of each of these deliveries (one channel's); a retryable failure schedules the next attempt."""
    return delivery.deliver_many(pks)
