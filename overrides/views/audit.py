"""The audit trail: every change record, filtered like the API (ObjectChangeFilterSet), newest first, paged by
keyset so deep pages of a long trail cost the same as the first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from overrides.filtersets import ObjectChangeFilterSet
from overrides.forms import AuditFilterForm
from overrides.models import ObjectChange

from .access import AUDIT_VIEW, require_perm
from .paging import keyset_page

AUDIT_PAGE = 50
PAGING_PARAMS = ("before", "after")


@require_perm(AUDIT_VIEW)
def audit_list(request: HttpRequest) -> HttpResponse:
    params = request.GET.copy()
    for key in PAGING_PARAMS:
        params.pop(key, None)
    params.pop("ordering", None)  # keyset paging fixes the order: newest first
    queryset = ObjectChangeFilterSet(data=params, queryset=ObjectChange.objects.all()).qs
    page = keyset_page(queryset, time_field="time", size=AUDIT_PAGE,
                       before=request.GET.get("before"), after=request.GET.get("after"))
    return render(request, "overrides/audit_list.html", {
        "filter_form": AuditFilterForm(params or None),
        "page": page,
        "changes": page.items,
        "filtered": any(v for k, v in params.items()),
        "query": params.urlencode(),
    })
