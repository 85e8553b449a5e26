"""The override page (spec, status, digest timeline, audit, the CR as YAML) and its actions."""

from __future__ import annotations

import time

import yaml
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from overrides import services
from overrides.cluster.state import cluster_enabled
from overrides.forms import OverrideForm, apply_service_errors
from overrides.lifetime import OwnershipConflict
from overrides.models import DigestOrigin, ModulePullOverride, ModuleSource, ObjectChange
from overrides.presentation import digest_timeline, override_notices, override_status, with_module_outcomes
from overrides.selectors import digest_history, offered_module_names
from overrides.verdict import cluster_module_of, with_verdict_inputs

from .access import (
    AUDIT_VIEW,
    OVERRIDE_ADD,
    OVERRIDE_CHANGE,
    OVERRIDE_DELETE,
    OVERRIDE_VIEW,
    require_perm,
    web_actor,
)
from .dashboard import refresh_seconds
from .paging import keyset_page

TIMELINE_PAGE = 25
RECENT_CHANGES = 10
DEFAULT_MPO_VERSION = "v1alpha1"
DELETE_EFFECT = {
    False: "the module keeps running the developer build until a release replaces it",
    True: "the module is rolled back to the released version at once",
}


def _live_override(name: str) -> ModulePullOverride:
    """An override that can still be changed (deleted ones are history: 404 for every action)."""
    return get_object_or_404(ModulePullOverride.objects.select_related("source", "owner"), name=name)


# After a failed version discovery, pages show v1alpha1 for a while instead of waiting on the cluster again.
VERSION_RETRY_SECONDS = 30.0
_version_failure: tuple[float, str] | None = None


def _served_mpo_version() -> tuple[str, str]:
    """(version, where it comes from) for showing the CR: the cluster's served version (discovery, cached by the
    cluster module), else v1alpha1. A page never waits on an unreachable cluster twice within 30 s."""
    global _version_failure
    from overrides.cluster import client as cluster

    if not cluster_enabled():
        return DEFAULT_MPO_VERSION, "cluster sync is off: shown as v1alpha1, the version of the seed"
    failure = _version_failure
    if failure is not None and failure[0] > time.monotonic():
        return DEFAULT_MPO_VERSION, failure[1]
    try:
        version = cluster.mpo_version()
    except cluster.ClusterError as exc:
        note = f"the cluster could not be asked which version it serves ({exc}); shown as v1alpha1"
        _version_failure = (time.monotonic() + VERSION_RETRY_SECONDS, note)
        return DEFAULT_MPO_VERSION, note
    _version_failure = None
    return version, "the version the cluster serves"


def applied_manifest(override: ModulePullOverride) -> tuple[str, str]:
    """The custom resource the portal applies for this override, as YAML (from the cluster module's builder, the
    one mapping of a row to its CR), and where its API version comes from."""
    from overrides.cluster import client as cluster

    version, origin = _served_mpo_version()
    body = cluster.override_body(override, version)
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False), origin


def _timeline_context(request: HttpRequest, override: ModulePullOverride) -> dict:
    """One page of the digest timeline: a page of registry observations (keyset) and the cluster observations
    in its time window. At most four queries whatever the history's length."""
    registry = digest_history(override, DigestOrigin.REGISTRY)
    page = keyset_page(registry, time_field="observed_at", size=TIMELINE_PAGE,
                       before=request.GET.get("before"), after=request.GET.get("after"))
    older = page.beyond_older
    if older is None and page.older and page.items:
        last = page.items[-1]
        older = (registry.filter(observed_at__lte=last.observed_at)
                 .filter(Q(observed_at__lt=last.observed_at) | Q(id__lt=last.id))
                 .order_by("-observed_at", "-id").first())
    newer = page.beyond_newer
    if newer is None and page.newer and page.items:
        first = page.items[0]
        newer = (registry.filter(observed_at__gte=first.observed_at)
                 .filter(Q(observed_at__gt=first.observed_at) | Q(id__gt=first.id))
                 .order_by("observed_at", "id").first())
    cluster = digest_history(override, DigestOrigin.CLUSTER)
    if older is not None:
        cluster = cluster.filter(observed_at__gt=older.observed_at)
    if newer is not None:
        cluster = cluster.filter(observed_at__lt=newer.observed_at)
    # Cluster observations are written only when the running digest changes, so a window holds few of them;
    # the cap only bounds a pathological history.
    cluster_rows = list(cluster[: TIMELINE_PAGE * 4])
    module = digest_history(override, DigestOrigin.MODULE)
    if older is not None:
        module = module.filter(observed_at__gt=older.observed_at)
    module_rows = list(module[: TIMELINE_PAGE * 8])
    return {
        "timeline": with_module_outcomes(digest_timeline(page.items, cluster_rows, older, newer), module_rows),
        "timeline_page": page,
    }


def _live_context(request: HttpRequest, override: ModulePullOverride) -> dict:
    return {"override": override, "badge": override_status(override), "notices": override_notices(override),
            "module": cluster_module_of(override), **_timeline_context(request, override)}


@require_perm(OVERRIDE_VIEW)
def override_detail(request: HttpRequest, name: str) -> HttpResponse:
    override = get_object_or_404(
        with_verdict_inputs(ModulePullOverride.all_objects.select_related("source", "owner")), name=name)
    # The audit records are shown to who may read the audit (the API's rule for /api/v1/audit/).
    changes = list(ObjectChange.objects.filter(object_type="modulepulloverride", object_id=override.pk)
                   .order_by("-time", "-id")[: RECENT_CHANGES + 1]) if request.user.has_perm(AUDIT_VIEW) else None
    manifest, manifest_origin = applied_manifest(override)
    context = _live_context(request, override)
    context.update(
        changes=changes[:RECENT_CHANGES] if changes is not None else None,
        more_changes=changes is not None and len(changes) > RECENT_CHANGES,
        manifest=manifest,
        manifest_origin=manifest_origin,
        live_query=request.GET.urlencode(),
        refresh_seconds=refresh_seconds(),
    )
    return render(request, "overrides/override_detail.html", context)


@require_perm(OVERRIDE_VIEW)
def override_live(request: HttpRequest, name: str) -> HttpResponse:
    """Status and the digest timeline alone, fetched by the override page every few seconds."""
    override = get_object_or_404(with_verdict_inputs(ModulePullOverride.all_objects.select_related("source")),
                                 name=name)
    response = render(request, "overrides/_override_live.html", _live_context(request, override))
    response["Cache-Control"] = "no-store"
    return response


def _form_page(request: HttpRequest, form: OverrideForm, override: ModulePullOverride | None) -> HttpResponse:
    """The create/edit page; the module suggestions are those of the source selected now."""
    sources = list(ModuleSource.objects.all())
    selected = form["source"].value() or (override.source.name if override else None)
    source = next((s for s in sources if s.name == selected), sources[0] if sources else None)
    return render(request, "overrides/override_form.html", {
        "form": form, "override": override, "sources": sources,
        "module_suggestions": offered_module_names(source) if source else [],
    })


def _take_over_page(request: HttpRequest, override: ModulePullOverride, conflict: OwnershipConflict | None,
                    what: str) -> HttpResponse:
    """Someone else holds the override: who, why and since when, and a "Take over" button that sends the same
    request again with `take_over` (409 for the refused write; 200 for the plain take-over page)."""
    fields = [(key, value) for key in request.POST for value in request.POST.getlist(key)
              if key not in ("csrfmiddlewaretoken", "take_over")]
    return render(request, "overrides/override_take_over.html", {
        "override": override, "conflict": conflict, "fields": fields, "action": request.path, "what": what,
        "cancel_url": reverse("ui:override", args=[override.name]),
    }, status=409 if conflict else 200)


def _take_over(request: HttpRequest) -> bool:
    return request.POST.get("take_over") == "1"


@require_perm(OVERRIDE_CHANGE)
def override_take_over(request: HttpRequest, name: str) -> HttpResponse:
    """Claim an unowned override or take over someone else's (after a confirmation); the previous owner is told."""
    override = _live_override(name)
    if request.method != "POST":
        return _take_over_page(request, override, None, "take it over")
    try:
        services.override_update(actor=web_actor(request), override=override, take_over=True)
    except ModulePullOverride.DoesNotExist:
        raise Http404("This override was deleted meanwhile.") from None
    messages.success(request, f'You now own the override of module "{override.name}".')
    return redirect("ui:override", name=override.name)


@require_perm(OVERRIDE_ADD)
def override_create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = OverrideForm(initial={"source": request.GET.get("source"), "name": request.GET.get("name"),
                                     "scan_interval": "15s"})
        return _form_page(request, form, None)
    form = OverrideForm(request.POST)
    if form.is_valid():
        try:
            override = services.override_create(actor=web_actor(request), name=form.cleaned_data["name"],
                                                 **form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc, {"expires_at": "expires"})
        else:
            messages.success(request, f'Override of module "{override.name}" created.')
            return redirect("ui:override", name=override.name)
    return _form_page(request, form, None)


@require_perm(OVERRIDE_CHANGE)
def override_edit(request: HttpRequest, name: str) -> HttpResponse:
    override = _live_override(name)
    initial = {"source": override.source.name, "name": override.name, "image_tag": override.image_tag,
               "scan_interval": override.scan_interval, "rollback": override.rollback,
               "auto_renew": override.auto_renew, "reason": override.reason}
    if request.method != "POST":
        return _form_page(request, OverrideForm(initial=initial, editing=True), override)
    form = OverrideForm(request.POST, initial=initial, editing=True)
    if form.is_valid():
        try:
            services.override_update(actor=web_actor(request), override=override, take_over=_take_over(request),
                                     **form.service_data())
        except ModulePullOverride.DoesNotExist:
            raise Http404("This override was deleted meanwhile.") from None
        except OwnershipConflict as conflict:
            return _take_over_page(request, override, conflict, "save your changes")
        except ValidationError as exc:
            apply_service_errors(form, exc, {"expires_at": "expires"})
        else:
            messages.success(request, f'Override of module "{override.name}" saved.')
            return redirect("ui:override", name=override.name)
    return _form_page(request, form, override)


@require_POST
@require_perm(OVERRIDE_CHANGE)
def override_renew(request: HttpRequest, name: str) -> HttpResponse:
    override = _live_override(name)
    force = request.POST.get("force") == "1"
    try:
        services.override_renew(actor=web_actor(request), override=override, force=force,
                                take_over=_take_over(request))
    except ModulePullOverride.DoesNotExist:
        raise Http404("This override was deleted meanwhile.") from None
    except OwnershipConflict as conflict:
        return _take_over_page(request, override, conflict, "renew it")
    if force:
        messages.success(request, "Forced renew requested: the module is redeployed even if the digest is unchanged.")
    else:
        messages.success(request, "Renew requested: the registry is checked now and the module redeployed if the "
                                  "image changed.")
    return redirect("ui:override", name=override.name)


@require_perm(OVERRIDE_DELETE)
def override_delete(request: HttpRequest, name: str) -> HttpResponse:
    override = _live_override(name)
    if request.method == "POST":
        try:
            services.override_delete(actor=web_actor(request), override=override, take_over=_take_over(request))
        except ModulePullOverride.DoesNotExist:
            raise Http404("This override was deleted meanwhile.") from None
        except OwnershipConflict as conflict:
            return _take_over_page(request, override, conflict, "delete it")
        messages.success(request, f'Override of module "{override.name}" deleted: '
                                  f"{DELETE_EFFECT[override.rollback]}.")
        return redirect("ui:dashboard")
    return render(request, "overrides/override_confirm_delete.html", {
        "override": override, "effect": DELETE_EFFECT[override.rollback],
        "cancel_url": reverse("ui:override", args=[override.name]),
    })
