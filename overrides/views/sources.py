"""ModuleSources: list, page (discovered modules and which are overridden), create/edit/delete, "check now",
and the two JSON endpoints of the override form's suggestions (modules of a source, tags of a module)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from overrides import enqueue, services
from overrides.forms import SourceForm, apply_service_errors
from overrides.models import ModulePullOverride, ModuleSource, SkippedClusterObject
from overrides.selectors import offered_module_names, offered_modules

from .access import SOURCE_ADD, SOURCE_CHANGE, SOURCE_DELETE, SOURCE_VIEW, require_perm, web_actor

MAX_TAG_SUGGESTIONS = 1000


def _editable_source(name: str) -> ModuleSource:
    source = get_object_or_404(ModuleSource.objects, name=name)
    if source.is_builtin:
        raise PermissionDenied('The "deckhouse" source is created and managed by Deckhouse: it is read-only here.')
    return source


@require_perm(SOURCE_VIEW)
def source_list(request: HttpRequest) -> HttpResponse:
    sources = ModuleSource.objects.annotate(
        override_count=Count("overrides", filter=Q(overrides__deleted_at__isnull=True))
    ).order_by("name")
    rows = [(source, len(offered_module_names(source))) for source in sources]
    # Admins see what the read-back left out of the portal (overrides.cluster.skips), to fix it in the cluster.
    skipped = (list(SkippedClusterObject.objects.all()[:200])
               if request.user.has_perm("overrides.view_skippedclusterobject") else [])
    return render(request, "overrides/source_list.html", {"sources": rows, "skipped": skipped})


def module_rows(source: ModuleSource) -> list[dict]:
    """One row per module the source offers: found by the portal's discovery and/or listed in the cluster's
    status, with the cluster's policy/overridden flag and the portal's override of that module, if any."""
    overrides = dict(ModulePullOverride.objects.values_list("name", "source__name"))
    return [{
        "name": module.name,
        "discovered": module.discovered,
        "policy": module.reported.get("policy", ""),
        "cluster_overridden": bool(module.reported.get("overridden")),
        "error": module.reported.get("error", ""),
        "override_source": overrides.get(module.name),
    } for module in offered_modules(source)]


@require_perm(SOURCE_VIEW)
def source_detail(request: HttpRequest, name: str) -> HttpResponse:
    source = get_object_or_404(ModuleSource.all_objects, name=name)
    rows = module_rows(source)
    return render(request, "overrides/source_detail.html", {
        "source": source,
        "modules": rows,
        "overridden_count": sum(1 for r in rows if r["override_source"] == source.name or r["cluster_overridden"]),
    })


def _form_page(request: HttpRequest, form: SourceForm, source: ModuleSource | None) -> HttpResponse:
    return render(request, "overrides/source_form.html", {"form": form, "source": source})


@sensitive_post_parameters("new_docker_cfg")
@require_perm(SOURCE_ADD)
def source_create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _form_page(request, SourceForm(initial={"scheme": "HTTPS"}), None)
    form = SourceForm(request.POST)
    if form.is_valid():
        try:
            source = services.source_create(actor=web_actor(request), name=form.cleaned_data["name"],
                                            docker_cfg=form.docker_cfg_change() or "", **form.spec())
        except ValidationError as exc:
            apply_service_errors(form, exc, SourceForm.FIELD_MAP)
        else:
            messages.success(request, f'Source "{source.name}" created; its modules are being discovered.')
            return redirect("ui:source", name=source.name)
    return _form_page(request, form, None)


@sensitive_post_parameters("new_docker_cfg")
@require_perm(SOURCE_CHANGE)
def source_edit(request: HttpRequest, name: str) -> HttpResponse:
    source = _editable_source(name)
    initial = {"name": source.name, "repo": source.repo, "scheme": source.scheme, "ca": source.ca,
               "release_channel": source.release_channel}
    if request.method != "POST":
        return _form_page(request, SourceForm(initial=initial, editing=True), source)
    form = SourceForm(request.POST, initial=initial, editing=True)
    if form.is_valid():
        try:
            services.source_update(actor=web_actor(request), source=source, docker_cfg=form.docker_cfg_change(),
                                   **form.spec())
        except ModuleSource.DoesNotExist:
            raise Http404("This source was deleted meanwhile.") from None
        except ValidationError as exc:
            apply_service_errors(form, exc, SourceForm.FIELD_MAP)
        else:
            messages.success(request, f'Source "{source.name}" saved.')
            return redirect("ui:source", name=source.name)
    return _form_page(request, form, source)


@require_perm(SOURCE_DELETE)
def source_delete(request: HttpRequest, name: str) -> HttpResponse:
    source = _editable_source(name)
    in_use = list(ModulePullOverride.objects.filter(source=source).values_list("name", flat=True)[:20])
    if request.method == "POST":
        try:
            services.source_delete(actor=web_actor(request), source=source)
        except ModuleSource.DoesNotExist:
            raise Http404("This source was deleted meanwhile.") from None
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("ui:source", name=source.name)
        messages.success(request, f'Source "{source.name}" deleted.')
        return redirect("ui:sources")
    return render(request, "overrides/source_confirm_delete.html", {"source": source, "in_use": in_use})


@require_POST
@require_perm(SOURCE_CHANGE)
def source_discover(request: HttpRequest, name: str) -> HttpResponse:
    """"Check now": list the repository's tags (the modules) in the background; the page shows the result."""
    source = get_object_or_404(ModuleSource.objects, name=name)
    enqueue.enqueue_discovery(source.pk)
    messages.success(request, f'Discovery of the modules of "{source.name}" queued; reload this page in a moment.')
    return redirect("ui:source", name=source.name)


@require_GET
@require_perm(SOURCE_VIEW)
def source_modules(request: HttpRequest, name: str) -> JsonResponse:
    """Module names the source offers, for the override form's datalist (from the database: no registry call)."""
    source = ModuleSource.objects.filter(name=name).first()
    if source is None:
        return JsonResponse({"modules": [], "error": f'There is no source named "{name}".'}, status=404)
    return JsonResponse({"modules": offered_module_names(source), "error": None})


@require_GET
@require_perm(SOURCE_VIEW)
def source_tags(request: HttpRequest, name: str) -> JsonResponse:
    """Tags of `<repo>/<module>` from the registry, for the override form's datalist. A registry failure is an
    answer too (`error`, in words): the form shows it and the user can still type a tag."""
    source = ModuleSource.objects.filter(name=name).first()
    if source is None:
        return JsonResponse({"tags": [], "error": f'There is no source named "{name}".'}, status=404)
    module = request.GET.get("module", "").strip()
    if not module:
        return JsonResponse({"tags": [], "error": "Enter a module first."}, status=400)
    from registry.client import list_tags

    listing = list_tags(source, module, limit=MAX_TAG_SUGGESTIONS)
    if listing.error is not None:
        return JsonResponse({"tags": [], "error": listing.error.message})
    return JsonResponse({"tags": listing.tags, "truncated": bool(listing.truncated), "error": None})
