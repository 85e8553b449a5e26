"""Keyset pagination for the long, append-only lists (digest history, audit trail).

Pages are addressed by the (time, id) of the row at their edge, newest first, so a page costs one indexed
range query however deep it is, with no COUNT over hundreds of thousands of rows, and new rows arriving
while someone reads do not shift the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(time: datetime, pk: int) -> str:
    delta = time - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}.{pk}"


def decode_cursor(value: str | None) -> tuple[datetime, int] | None:
    """The (time, id) of a cursor, or None for anything malformed (then the first page is shown)."""
    if not value or len(value) > 40:
        return None
    micros, _, pk = value.partition(".")
    try:
        time = EPOCH + timedelta(microseconds=int(micros))
        return time, int(pk)
    except (ValueError, OverflowError):
        return None


@dataclass
class KeysetPage:
    """One page, newest first. `older` / `newer` are cursors for the neighbouring pages (None at an end);
    `beyond_older` is the row just past the page's older edge, when there is one."""

    items: list
    older: str | None = None
    newer: str | None = None
    beyond_older: object | None = None
    beyond_newer: object | None = None


def keyset_page(queryset: QuerySet, *, time_field: str, size: int, before: str | None = None,
                after: str | None = None, newest_when_empty: bool = True) -> KeysetPage:
    """The page of `queryset` older than cursor `before`, or newer than `after`, or the newest page (also for a
    cursor past either end, unless `newest_when_empty` is False: then that page is empty)."""
    key = decode_cursor(before) or decode_cursor(after)
    if key is not None:
        page = _page_at(queryset, time_field, size, key, older_than=decode_cursor(before) is not None)
        if page.items or not newest_when_empty:
            return page
    # No cursor, a malformed one, or one past either end: the newest page.
    rows = list(queryset.order_by(f"-{time_field}", "-id")[: size + 1])
    items, extra = rows[:size], rows[size:]
    return _page(items, time_field, older=bool(extra), newer=False, beyond_older=extra[0] if extra else None)


def _page_at(queryset: QuerySet, time_field: str, size: int, key: tuple[datetime, int], *,
             older_than: bool) -> KeysetPage:
    time, pk = key
    # `time <= T AND (time < T OR id < I)`: the first term is an index range, the rest a cheap filter.
    if older_than:
        rows = list(queryset.filter(**{f"{time_field}__lte": time})
                    .filter(Q(**{f"{time_field}__lt": time}) | Q(id__lt=pk))
                    .order_by(f"-{time_field}", "-id")[: size + 1])
        items, extra = rows[:size], rows[size:]
        return _page(items, time_field, older=bool(extra), newer=True, beyond_older=extra[0] if extra else None)
    rows = list(queryset.filter(**{f"{time_field}__gte": time})
                .filter(Q(**{f"{time_field}__gt": time}) | Q(id__gt=pk))
                .order_by(time_field, "id")[: size + 1])
    items, extra = rows[:size], rows[size:]
    items.reverse()
    return _page(items, time_field, older=True, newer=bool(extra), beyond_newer=extra[0] if extra else None)


def _page(items: list, time_field: str, *, older: bool, newer: bool, beyond_older=None,
          beyond_newer=None) -> KeysetPage:
    if not items:
        return KeysetPage(items=[])
    first, last = items[0], items[-1]
    return KeysetPage(
        items=items,
        older=encode_cursor(getattr(last, time_field), last.pk) if older else None,
        newer=encode_cursor(getattr(first, time_field), first.pk) if newer else None,
        beyond_older=beyond_older,
        beyond_newer=beyond_newer,
    )


class BoundedCountPaginator(Paginator):
    """Django's paginator for the admin's long lists, counting at most `COUNT_CAP` rows (`SELECT COUNT(*) FROM
    (... LIMIT cap)`): a full COUNT of 200k digests costs more than the page itself, and no one pages a hundred
    pages deep in the admin; beyond them, its filters and date drill-down narrow the list."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.COUNT_CAP].count()
