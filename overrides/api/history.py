"""Read-only history: an override's digest history and the audit trail."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, viewsets

from overrides.api.common import AUTH_ERRORS, NOT_FOUND, VALIDATION, ApiPagination, path_name
from overrides.api.paging import KeysetPagination
from overrides.api.serializers import DigestObservationSerializer, ObjectChangeSerializer
from overrides.filtersets import DigestObservationFilterSet, ObjectChangeFilterSet
from overrides.models import DigestObservation, ModulePullOverride, ObjectChange
from overrides.selectors import digest_history


@extend_schema(summary="Digest history of an override, newest first (paged by cursor: follow next/previous)",
               parameters=[path_name("override (module)")],
               responses={200: DigestObservationSerializer(many=True), 400: VALIDATION, **AUTH_ERRORS, **NOT_FOUND})
class DigestHistoryView(generics.ListAPIView):
    """Digests seen for the override's image: by the portal's registry checks and reported by the cluster."""

    serializer_class = DigestObservationSerializer
    filterset_class = DigestObservationFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = KeysetPagination  # a history of 200k digests pages as fast at its end as at its start
    keyset_time_field = "observed_at"
    permission_model = ModulePullOverride  # reading an override's history needs only view on overrides

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return DigestObservation.objects.none()
        override = get_object_or_404(ModulePullOverride.objects.all(), name=self.kwargs["name"])
        return digest_history(override)


@extend_schema_view(
    list=extend_schema(summary="Audit records, newest first",
                       responses={200: ObjectChangeSerializer(many=True), 400: VALIDATION, **AUTH_ERRORS}),
    retrieve=extend_schema(summary="One audit record",
                           parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                                        description="The audit record's id.")],
                           responses={200: ObjectChangeSerializer, **AUTH_ERRORS,
                                                                  **NOT_FOUND}),
)
class ObjectChangeViewSet(viewsets.ReadOnlyModelViewSet):
    """Who changed what, when, from where (web, api, admin, scheduler, cluster, cli), with which message."""

    queryset = ObjectChange.objects.all().order_by("-time", "-id")
    serializer_class = ObjectChangeSerializer
    filterset_class = ObjectChangeFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = ApiPagination
    lookup_value_regex = "[0-9]+"
