"""Durations written as `7d`, `24h`, `1d12h`, `90m`, `30s` (days, hours, minutes, seconds, in that order).

No Django imports: portal/settings.py parses its duration settings with it at start-up.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
MAX_DAYS = 3650


def parse_duration(text: str) -> timedelta:
    """`1d12h` → timedelta(days=1, hours=12). ValueError (saying what is wrong) for anything else or zero."""
    value = (text or "").strip().lower()
    match = _DURATION.match(value)
    if not value or match is None:
        raise ValueError(f'"{text}" is not a duration: write days, hours, minutes and seconds in that order, '
                         "e.g. 7d, 24h, 1d12h, 90m.")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    try:
        delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f'"{text}" is far too long.') from None
    if delta <= timedelta(0):
        raise ValueError(f'"{text}" is zero: give a positive duration.')
    if delta > timedelta(days=MAX_DAYS):
        raise ValueError(f'"{text}" is longer than {MAX_DAYS} days.')
    return delta


def format_duration(delta: timedelta) -> str:
    """The inverse of `parse_duration` (the largest units first), e.g. timedelta(hours=36) → `1d12h`."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
