"""API views for overrides and sources: thin viewsets that validate shapes and call the services.

Every write goes through overrides.services with the token owner as actor (context "api") and the request's
changelogMessage; the services validate, audit and enqueue the cluster apply and the registry check.
"""

from __future__ import annotations

from django.db import IntegrityError
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from overrides import services
from overrides.api import rollout_waits
from overrides.api.common import (
    AUTH_ERRORS,
    NOT_FOUND,
    OVERRIDE_API_NAMES,
    SOURCE_API_NAMES,
    VALIDATION,
    ApiPagination,
    api_actor,
    changelog_from_query,
    error,
    named_actions,
    refusals_as_conflict,
    service_errors,
)
from overrides.api.permissions import has_perm, require_perm
from overrides.api.serializers import (
    ModulePullOverrideSerializer,
    ModulePullOverrideUpdateSerializer,
    ModuleSourceSerializer,
    ModuleSourceUpdateSerializer,
    RenewSerializer,
    RolloutQuerySerializer,
    RolloutSerializer,
)
from overrides.filtersets import ModulePullOverrideFilterSet, ModuleSourceFilterSet
from overrides.models import ModulePullOverride, ModuleSource
from overrides.verdict import with_verdict_inputs
from portal.json_input import JSONBodyParser

TAKE_OVER = OpenApiParameter("takeOver", OpenApiTypes.BOOL, OpenApiParameter.QUERY,
                             description="Delete someone else's override anyway (its owner is notified).")
DELETE_MESSAGE = OpenApiParameter("changelogMessage", OpenApiTypes.STR, OpenApiParameter.QUERY,
                                  description="Why it is deleted; kept on the audit record.")
OWNED = {409: error("Someone else owns the override: the body names the owner, reason, ownedSince and "
                    "expiresAt; send takeOver: true to take it over.")}
WRITE_ERRORS = {400: VALIDATION, **AUTH_ERRORS}
OVERRIDE_WRITE_ERRORS = {**WRITE_ERRORS, **OWNED}


def _lifetime_args(data: dict) -> bool:
    """Body fields to service arguments: `expiresAt` → `expires`; returns (and removes) `takeOver`."""
    if "expires_at" in data:
        data["expires"] = data.pop("expires_at")
    return bool(data.pop("take_over", False))


def _take_over_from_query(request) -> bool:
    value = request.query_params.get("takeOver")
    if value is None and isinstance(request.data, dict):
        value = request.data.get("takeOver")
    return str(value).lower() in ("1", "true", "yes") if value is not None else False


def _check_body_name(data: dict, name: str) -> None:
    body_name = data.pop("name", None)
    if body_name not in (None, "", name):
        raise exceptions.ValidationError(
            {"name": f'The name in the body ("{body_name}") differs from the URL ("{name}"); names cannot be '
                     "changed: delete and create instead."}
        )


class NamedObjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Objects addressed by name; the routes' name may hold dots (source names do)."""

    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend]
    pagination_class = ApiPagination
    parser_classes = [JSONBodyParser]  # pipelines send JSON; nested `registry` has no form encoding
    permission_method: str | None = None  # set per action, see TokenModelPermissions

    def filter_queryset(self, queryset):
        # Filters serve the list; on a detail route they would only cost a FilterSet per request.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @sensitive_variables()  # a source body holds a credential, and so do the serializer frames below
    def _validated(self, serializer_class, partial: bool = False) -> dict:
        serializer = serializer_class(data=self.request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _location(self, obj) -> dict[str, str]:
        basename = "api:" + self.basename + "-detail"
        return {"Location": self.request.build_absolute_uri(reverse(basename, kwargs={"name": obj.name}))}


@extend_schema_view(
    list=extend_schema(summary="List overrides", responses={200: ModulePullOverrideSerializer(many=True),
                                                             400: VALIDATION, **AUTH_ERRORS}),
    retrieve=extend_schema(summary="Get an override", responses={200: ModulePullOverrideSerializer, **AUTH_ERRORS,
                                                                 **NOT_FOUND}),
)
@named_actions("override (module)", "retrieve", "update", "partial_update", "destroy", "renew", "rollout")
class ModulePullOverrideViewSet(NamedObjectViewSet):
    """ModulePullOverrides: what a CI pipeline writes to run its branch's image in the cluster."""

    queryset = with_verdict_inputs(ModulePullOverride.objects.select_related("source", "owner"))
    serializer_class = ModulePullOverrideSerializer
    filterset_class = ModulePullOverrideFilterSet

    @extend_schema(summary="Create an override", request=ModulePullOverrideSerializer,
                   responses={201: ModulePullOverrideSerializer, **OVERRIDE_WRITE_ERRORS})
    def create(self, request, *args, **kwargs):
        data = self._validated(ModulePullOverrideSerializer)
        with service_errors(OVERRIDE_API_NAMES):
            override = services.override_create(
                actor=api_actor(request), name=data["name"], source=data["source"], image_tag=data["image_tag"],
                scan_interval=data["scan_interval"], rollback=data["rollback"],
                auto_renew=data.get("auto_renew", True), message=data.get("changelogMessage", ""),
                reason=data.get("reason", ""), expires=data.get("expires_at"),
            )
        return Response(self.get_serializer(override).data, status=status.HTTP_201_CREATED,
                        headers=self._location(override))

    @extend_schema(
        summary="Create or replace an override (upsert)",
        description="201 when it created the override, 200 when it updated it; repeating it changes nothing. "
                    "Omitted scanInterval and rollback take their defaults (15s, false).",
        request=ModulePullOverrideUpdateSerializer,
        responses={200: ModulePullOverrideSerializer, 201: ModulePullOverrideSerializer, **OVERRIDE_WRITE_ERRORS},
    )
    def update(self, request, name: str, *args, **kwargs):
        data = self._validated(ModulePullOverrideUpdateSerializer)
        _check_body_name(data, name)
        message = data.pop("changelogMessage", "")
        take_over = _lifetime_args(data)
        exists = ModulePullOverride.objects.filter(name=name).exists
        if not has_perm(request, ModulePullOverride, "add") and not exists():
            require_perm(request, ModulePullOverride, "add")  # an upsert that would create
        try:
            override, created = self._upsert(request, name, data, message, take_over)
        except IntegrityError:
            # Two upserts created the same name at once (possible on PostgreSQL): the loser updates instead.
            override, created = self._upsert(request, name, data, message, take_over)
        return Response(self.get_serializer(override).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                        headers=self._location(override) if created else None)

    def _upsert(self, request, name: str, data: dict, message: str,
                take_over: bool) -> tuple[ModulePullOverride, bool]:
        with service_errors(OVERRIDE_API_NAMES):
            return services.override_upsert(actor=api_actor(request), name=name, data=data, message=message,
                                            take_over=take_over)

    @extend_schema(summary="Change some fields of an override", request=ModulePullOverrideUpdateSerializer,
                   responses={200: ModulePullOverrideSerializer, **OVERRIDE_WRITE_ERRORS, **NOT_FOUND})
    def partial_update(self, request, name: str, *args, **kwargs):
        override = self.get_object()
        data = self._validated(ModulePullOverrideUpdateSerializer, partial=True)
        _check_body_name(data, name)
        message = data.pop("changelogMessage", "")
        take_over = _lifetime_args(data)
        with service_errors(OVERRIDE_API_NAMES):
            override = services.override_update(actor=api_actor(request), override=override, message=message,
                                                take_over=take_over, **data)
        return Response(self.get_serializer(override).data)

    @extend_schema(summary="Delete an override (the module goes back to its release)", request=None,
                   parameters=[DELETE_MESSAGE, TAKE_OVER],
                   responses={204: OpenApiResponse(description="Deleted."), 400: VALIDATION, **AUTH_ERRORS,
                              **NOT_FOUND, **OWNED})
    def destroy(self, request, *args, **kwargs):
        override = self.get_object()
        message = changelog_from_query(request)
        with service_errors(OVERRIDE_API_NAMES):
            services.override_delete(actor=api_actor(request), override=override, message=message,
                                     take_over=_take_over_from_query(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Renew: check the registry now and redeploy a changed digest", request=RenewSerializer,
                   responses={202: ModulePullOverrideSerializer, **OVERRIDE_WRITE_ERRORS, **NOT_FOUND})
    @action(detail=True, methods=["post"], permission_method="PATCH")
    def renew(self, request, name: str):
        override = self.get_object()
        data = self._validated(RenewSerializer)
        override = services.override_renew(actor=api_actor(request), override=override, force=data["force"],
                                           message=data.get("changelogMessage", ""), take_over=data["take_over"])
        return Response(self.get_serializer(override).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Wait until the cluster runs a digest",
        description="Long poll: answers as soon as the outcome is clear, or after `timeout` seconds. "
                    "200 rolled-out; 409 failed (the controller reports an error for this image), sync-off or "
                    "deleted; 408 timeout. Behind a proxy with a read timeout, call it in a loop with a short "
                    "timeout. 429 when this server already holds its maximum of waits (retry after Retry-After).",
        parameters=[RolloutQuerySerializer],
        responses={200: RolloutSerializer, 408: RolloutSerializer, 409: RolloutSerializer, 400: VALIDATION,
                   **AUTH_ERRORS, **NOT_FOUND, 429: error("Too many waits at once on this server; retry later.")},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def rollout(self, request, name: str):
        override = self.get_object()
        query = RolloutQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        outcome = rollout_waits.start_wait(request, override, query.validated_data.get("digest") or None,
                                           query.validated_data["timeout"])
        if isinstance(outcome, rollout_waits.Wait):  # not final yet: `rollout_waits.async_front` awaits it
            response = Response(None)
            response.rollout_wait = outcome
            return response
        return Response(RolloutSerializer(outcome).data, status=outcome.http_status)


@extend_schema_view(
    list=extend_schema(summary="List sources", responses={200: ModuleSourceSerializer(many=True), 400: VALIDATION,
                                                          **AUTH_ERRORS}),
    retrieve=extend_schema(summary="Get a source", responses={200: ModuleSourceSerializer, **AUTH_ERRORS,
                                                              **NOT_FOUND}),
)
@named_actions("source", "retrieve", "update", "partial_update", "destroy")
class ModuleSourceViewSet(NamedObjectViewSet):
    """ModuleSources: the registries modules come from. dockerCfg is write-only."""

    queryset = ModuleSource.objects.all()
    serializer_class = ModuleSourceSerializer
    filterset_class = ModuleSourceFilterSet

    @extend_schema(summary="Create a source", request=ModuleSourceSerializer,
                   responses={201: ModuleSourceSerializer, **WRITE_ERRORS})
    @sensitive_variables("data")
    def create(self, request, *args, **kwargs):
        data = self._validated(ModuleSourceSerializer)
        source = self._create(request, data.pop("name"), data)
        return Response(self.get_serializer(source).data, status=status.HTTP_201_CREATED,
                        headers=self._location(source))

    @sensitive_variables("data")
    def _create(self, request, name: str, data: dict) -> ModuleSource:
        message = data.pop("changelogMessage", "")
        with service_errors(SOURCE_API_NAMES):
            return services.source_create(actor=api_actor(request), name=name, message=message, **data)

    @extend_schema(
        summary="Create or replace a source (upsert)",
        description="201 when it created the source, 200 when it updated it. An omitted registry.dockerCfg keeps "
                    "the stored credentials; omitted scheme, ca and releaseChannel take their defaults.",
        request=ModuleSourceUpdateSerializer,
        responses={200: ModuleSourceSerializer, 201: ModuleSourceSerializer, **WRITE_ERRORS},
    )
    @sensitive_variables("data")
    def update(self, request, name: str, *args, **kwargs):
        data = self._validated(ModuleSourceUpdateSerializer)
        _check_body_name(data, name)
        if not ModuleSource.objects.filter(name=name).exists():
            require_perm(request, ModuleSource, "add")  # an upsert that would create
        message = data.pop("changelogMessage", "")
        with service_errors(SOURCE_API_NAMES):
            source, created = services.source_upsert(actor=api_actor(request), name=name, data=data, message=message)
        return Response(self.get_serializer(source).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                        headers=self._location(source) if created else None)

    @extend_schema(summary="Change some fields of a source", request=ModuleSourceUpdateSerializer,
                   responses={200: ModuleSourceSerializer, **WRITE_ERRORS, **NOT_FOUND})
    @sensitive_variables("data")
    def partial_update(self, request, name: str, *args, **kwargs):
        source = self.get_object()
        data = self._validated(ModuleSourceUpdateSerializer, partial=True)
        _check_body_name(data, name)
        return Response(self.get_serializer(self._update(request, source, data)).data)

    @sensitive_variables("data")
    def _update(self, request, source: ModuleSource, data: dict) -> ModuleSource:
        message = data.pop("changelogMessage", "")
        with service_errors(SOURCE_API_NAMES):
            return services.source_update(actor=api_actor(request), source=source, message=message, **data)

    @extend_schema(summary="Delete a source that no override uses", request=None, parameters=[DELETE_MESSAGE],
                   responses={204: OpenApiResponse(description="Deleted."), 400: VALIDATION, **AUTH_ERRORS,
                              **NOT_FOUND, 409: error("Refused: overrides use it, or it belongs to Deckhouse.")})
    def destroy(self, request, *args, **kwargs):
        source = self.get_object()
        message = changelog_from_query(request)
        with refusals_as_conflict():
            services.source_delete(actor=api_actor(request), source=source, message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)
