"""When things are done again: check cadence, discovery cadence, and the one exponential backoff rule.

Pure arithmetic on datetimes (no database, no registry), shared by the digest checks (`checks`), the per-host
circuits (`circuits`) and the cluster apply loop (`overrides.cluster.sync`), so a failing registry, host or
cluster call waits by the same rule everywhere: base, 2x, 4x, ... capped, and never before a `Retry-After`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError

from overrides.validators import DEFAULT_SCAN_INTERVAL, parse_scan_interval

RETRY_AFTER_CAP = timedelta(hours=1)  # a registry asking for more than this is not taken literally
DISCOVERY_INTERVAL = timedelta(minutes=3)  # what Deckhouse itself uses to refresh a source's modules


def backoff_cap() -> timedelta:
    """The longest wait after failing registry checks (setting PORTAL_POLL_BACKOFF_CAP, read on every call)."""
    return timedelta(seconds=settings.PORTAL_POLL_BACKOFF_CAP)


def doubling(base: timedelta, failures: int, cap: timedelta) -> timedelta:
    """Exponential backoff after the `failures`-th failure in a row: base, 2x base, 4x base, ... at most `cap`."""
    return min(base * (2 ** min(max(failures - 1, 0), 20)), cap)


def not_before_retry_after(delay: timedelta, retry_after: datetime | None, now: datetime) -> timedelta:
    """`delay`, or longer when the registry's `Retry-After` asks for it (up to `RETRY_AFTER_CAP`)."""
    if retry_after is None:
        return delay
    return max(delay, min(retry_after - now, RETRY_AFTER_CAP))


def scan_interval_of(value: str) -> timedelta:
    """The row's scanInterval; a value that does not parse (an odd imported CR) counts as the default."""
    try:
        return parse_scan_interval(value)
    except ValidationError:
        return parse_scan_interval(DEFAULT_SCAN_INTERVAL)


def next_due(due: datetime, interval: timedelta, now: datetime) -> datetime:
    """The first slot `due + k*interval` (k >= 1) after `now`: the phase of the schedule is kept, and missed slots
    (a dispatcher outage) are skipped instead of being caught up in a burst."""
    following = due + interval
    if following > now:
        return following
    missed = (now - due) // interval
    return due + (missed + 1) * interval


def failure_delay(interval: timedelta, failures: int, retry_after: datetime | None, now: datetime) -> timedelta:
    """Backoff of one override after its `failures`-th failed check in a row: the interval doubling up to
    `backoff_cap()` (never shorter than the interval itself), and never before the registry's `Retry-After`."""
    delay = max(interval, doubling(interval, failures, backoff_cap()))
    return not_before_retry_after(delay, retry_after, now)
