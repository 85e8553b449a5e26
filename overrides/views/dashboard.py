"""The dashboard: every override, where it stands, filtered and paginated; its table body refreshes itself."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from overrides.filtersets import ModulePullOverrideFilterSet, expiring_soon, owned_by
from overrides.forms import OverrideFilterForm
from overrides.models import ModulePullOverride, ModuleSource
from overrides.verdict import with_verdict_inputs

from .access import OVERRIDE_VIEW, require_perm

PAGE_SIZES = (50, 100, 200)
DEFAULT_PAGE_SIZE = 100


def refresh_seconds() -> int:
    """How often open pages refresh their live parts (setting PORTAL_UI_REFRESH_SECONDS)."""
    return max(1, int(settings.PORTAL_UI_REFRESH_SECONDS))


FILTER_PARAMS = ("search", "source", "sync_state", "syncState", "verdict", "registry_error", "mine", "expiring")


def filter_overrides(params, queryset: QuerySet, user=None) -> QuerySet:
    """The API's FilterSet (search, source, syncState...), plus the UI's "only registry errors", "mine" and
    "expiring soon". Invalid values are ignored rather than refused: a filter never makes the dashboard fail."""
    queryset = ModulePullOverrideFilterSet(data=params, queryset=queryset).qs
    if params.get("registry_error"):
        queryset = queryset.exclude(registry_error="")
    if params.get("mine"):
        queryset = owned_by(queryset, user)
    if params.get("expiring"):
        queryset = expiring_soon(queryset)
    return queryset


def _page_size(request: HttpRequest) -> int:
    try:
        size = int(request.GET.get("per_page", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def _dashboard_context(request: HttpRequest) -> dict:
    """Everything both the page and its refreshing fragment show; a constant number of queries per page."""
    source_names = list(ModuleSource.objects.values_list("name", flat=True))
    form = OverrideFilterForm(request.GET or None, source_names=source_names)
    queryset = filter_overrides(request.GET, with_verdict_inputs(
        ModulePullOverride.objects.select_related("source", "owner").order_by("name")), user=request.user)
    paginator = Paginator(queryset, _page_size(request))
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    size_query = query.copy()
    size_query.pop("per_page", None)
    return {
        "filter_form": form,
        "page": page,
        "overrides": page.object_list,
        "filtered": any(request.GET.get(p) for p in FILTER_PARAMS),
        "query": query.urlencode(),
        "size_query": size_query.urlencode(),
        "full_query": request.GET.urlencode(),
        "refresh_seconds": refresh_seconds(),
        "page_sizes": PAGE_SIZES,
        "page_size": paginator.per_page,
        "has_sources": bool(source_names),
    }


@require_perm(OVERRIDE_VIEW)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "overrides/dashboard.html", _dashboard_context(request))


@require_perm(OVERRIDE_VIEW)
def dashboard_rows(request: HttpRequest) -> HttpResponse:
    """The table body alone (and the result count), fetched by the page every few seconds."""
    response = render(request, "overrides/_dashboard_rows.html", _dashboard_context(request))
    response["Cache-Control"] = "no-store"
    return response
