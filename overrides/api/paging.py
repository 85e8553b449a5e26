"""Keyset (cursor) pagination for the API's long, append-only lists (an override's digest history).

Offset paging costs a scan of every skipped row plus a full COUNT: 0.7 s at a deep offset of 200k digests. Here a
page is one indexed range query at any depth (`overrides.views.paging.keyset_page`, the rule the UI uses too):
`next` and `previous` carry a cursor (`before=` / `after=`, the time and id of the page's edge), there is no
`count`, and rows arriving meanwhile never shift the pages. `ordering=observedAt` (oldest first) walks the same
cursors the other way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from overrides.views.paging import EPOCH, decode_cursor, encode_cursor, keyset_page

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# Just before every row: the first page of an oldest-first walk is "newer than this".
_BEFORE_ALL = encode_cursor(EPOCH - timedelta(microseconds=1), 0)


class KeysetPagination(BasePagination):
    """`?limit=N` (1-1000, default 50), `?before=<cursor>` / `?after=<cursor>` from `next` / `previous`.

    The view names its time column in `keyset_time_field`; ties on it are broken by id.
    """

    def paginate_queryset(self, queryset, request, view=None) -> list:
        params = request.query_params
        if "offset" in params:
            raise exceptions.ValidationError({"offset": [
                "This list is paged by cursor, not offset: follow the `next` and `previous` links."]})
        limit = self._limit(params.get("limit"))
        before, after = params.get("before"), params.get("after")
        for name, value in (("before", before), ("after", after)):
            if value is not None and decode_cursor(value) is None:
                raise exceptions.ValidationError({name: ["Not a cursor of this list: use the `next` and `previous` "
                                                         "links as they are."]})
        if before is not None and after is not None:
            raise exceptions.ValidationError({"before": ["Give before or after, not both."]})
        self.request = request
        time_field = view.keyset_time_field
        oldest_first = [str(o) for o in queryset.query.order_by][:1] == [time_field]
        if oldest_first and before is None:
            after = after or _BEFORE_ALL  # an oldest-first walk starts just before the oldest row
        page = keyset_page(queryset, time_field=time_field, size=limit, before=before, after=after,
                           newest_when_empty=False)
        items = page.items
        older = ("before", page.older) if page.older else None
        newer = ("after", page.newer) if page.newer else None
        if not oldest_first:
            self.next_cursor, self.previous_cursor = older, newer
            return items
        # keyset_page answers newest first; this walk reads each page the other way round.
        items = list(reversed(items))
        self.next_cursor, self.previous_cursor = newer, older if (before or after != _BEFORE_ALL) else None
        return items

    @staticmethod
    def _limit(value: str | None) -> int:
        if value is None or value == "":
            return DEFAULT_LIMIT
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise exceptions.ValidationError({"limit": [f"Enter a whole number from 1 to {MAX_LIMIT}."]})
        return limit

    def _link(self, cursor: tuple[str, str] | None) -> str | None:
        if cursor is None:
            return None
        name, value = cursor
        url = self.request.build_absolute_uri()
        url = remove_query_param(remove_query_param(url, "before"), "after")
        return replace_query_param(url, name, value)

    def get_paginated_response(self, data) -> Response:
        return Response({"next": self._link(self.next_cursor), "previous": self._link(self.previous_cursor),
                         "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri",
                         "description": "URL of the next page (null: last page)."},
                "previous": {"type": "string", "nullable": True, "format": "uri",
                             "description": "URL of the previous page (null: first page)."},
                "results": {**schema, "description": "This page."},
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        def param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
            return {"name": name, "required": False, "in": "query", "description": description, "schema": schema}

        return [
            param("limit", f"Rows per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
                  {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
            param("before", "Cursor from a `next` link: the rows after this page.", {"type": "string"}),
            param("after", "Cursor from a `previous` link: the rows before this page.", {"type": "string"}),
        ]
