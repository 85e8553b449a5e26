"""One FilterSet per model, serving both the REST API lists and the web UI lists (NetBox's filtersets.py).

Parameter names are the API's (camelCase); `sync_state` is also accepted next to `syncState` for people who
type the model's name. Each FilterSet carries its own `search` and `ordering`, so a UI list and the API list
filter and sort the same way.
"""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from overrides import verdict as verdicts
from overrides.models import (
    ChangeAction,
    ChangeContext,
    DigestObservation,
    DigestOrigin,
    ModulePullOverride,
    ModuleSource,
    ObjectChange,
    Scheme,
    SyncState,
)

OBJECT_TYPES = {
    "override": "modulepulloverride",
    "modulepulloverride": "modulepulloverride",
    "source": "modulesource",
    "modulesource": "modulesource",
}


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 time, compared in UTC: any offset Python accepts (up to ±24h) is converted first, because
    PostgreSQL refuses offsets beyond ±15:59 in a query; a time that leaves the calendar is a 400 in words."""

    class field_class(django_filters.IsoDateTimeFilter.field_class):  # noqa: N801 (django-filter's hook name)
        def to_python(self, value):
            parsed = super().to_python(value)
            if parsed is None or parsed.tzinfo is None:
                return parsed
            try:
                return parsed.astimezone(UTC)
            except OverflowError:
                raise ValidationError(f'"{value}" is outside the calendar once converted to UTC.') from None


def _search(queryset: QuerySet, fields: tuple[str, ...], value: str) -> QuerySet:
    """Case-insensitive substring match on any of `fields`."""
    value = value.strip()
    if not value:
        return queryset
    query = Q()
    for field in fields:
        query |= Q(**{f"{field}__icontains": value})
    return queryset.filter(query)


def _sync_state_filters() -> tuple[django_filters.Filter, django_filters.Filter]:
    label = "Sync state with the cluster: pending, synced, error or off (repeat the parameter for several)."
    return (
        django_filters.MultipleChoiceFilter(field_name="sync_state", choices=SyncState.choices, label=label),
        django_filters.MultipleChoiceFilter(field_name="sync_state", choices=SyncState.choices,
                                            label="Same as syncState."),
    )


class ModuleSourceFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", label="Text in the name or the repository.")
    name = django_filters.CharFilter(field_name="name", label="Exact source name.")
    repo = django_filters.CharFilter(field_name="repo", label="Exact registry repository.")
    scheme = django_filters.ChoiceFilter(field_name="scheme", choices=Scheme.choices, label="HTTP or HTTPS.")
    syncState, sync_state = _sync_state_filters()  # noqa: N815 - API parameter name
    ordering = django_filters.OrderingFilter(
        fields=(("name", "name"), ("repo", "repo"), ("sync_state", "syncState"), ("created_at", "createdAt"),
                ("updated_at", "updatedAt")),
        label="Sort by name, repo, syncState, createdAt or updatedAt; prefix with - for descending.",
    )

    class Meta:
        model = ModuleSource
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _search(queryset, ("name", "repo"), value)


class ModulePullOverrideFilterSet(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", label="Text in the module name, image tag, source name or cluster status message."
    )
    name = django_filters.CharFilter(field_name="name", label="Exact module name.")
    source = django_filters.CharFilter(field_name="source__name", label="Name of the ModuleSource.")
    imageTag = django_filters.CharFilter(field_name="image_tag", label="Exact image tag.")  # noqa: N815
    rollback = django_filters.BooleanFilter(field_name="rollback", label="Overrides with (true) or without rollback.")
    syncState, sync_state = _sync_state_filters()  # noqa: N815
    verdict = django_filters.ChoiceFilter(
        choices=[(state, state) for state in verdicts.STATES], method="filter_verdict",
        label="The rollout verdict: running, deploying, pending, download-failed, deploy-failed, blocked, sync-off "
              "or unknown.",
    )
    owner = django_filters.CharFilter(field_name="owner__username", label="User name of the owner.")
    mine = django_filters.BooleanFilter(method="filter_mine", label="true: only the caller's own overrides.")
    expiringSoon = django_filters.BooleanFilter(  # noqa: N815
        method="filter_expiring", label="true: only overrides expiring within PORTAL_OVERRIDE_REMINDER (24h).")
    ordering = django_filters.OrderingFilter(
        fields=(("name", "name"), ("source__name", "source"), ("image_tag", "imageTag"), ("sync_state", "syncState"),
                ("expires_at", "expiresAt"),
                ("registry_checked_at", "registryCheckedAt"), ("status_updated_at", "statusUpdatedAt"),
                ("created_at", "createdAt"), ("updated_at", "updatedAt")),
        label="Sort by name, source, imageTag, syncState, expiresAt, registryCheckedAt, statusUpdatedAt, createdAt "
              "or updatedAt; prefix with - for descending.",
    )

    class Meta:
        model = ModulePullOverride
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _search(queryset, ("name", "image_tag", "source__name", "status_message"), value)

    def filter_verdict(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """The verdict is decided in Python (`overrides.verdict`), so the matching rows are picked in one pass."""
        rows = verdicts.with_verdict_inputs(queryset.select_related(None).order_by())
        return queryset.filter(pk__in=[o.pk for o in rows if verdicts.override_verdict(o).state == value])

    def filter_mine(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        return owned_by(queryset, getattr(self.request, "user", None)) if value else queryset

    def filter_expiring(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        return expiring_soon(queryset) if value else queryset


def owned_by(queryset: QuerySet, user) -> QuerySet:
    """The dashboard's "mine" and the API's `mine=true`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return queryset.none()
    return queryset.filter(owner=user)


def expiring_soon(queryset: QuerySet) -> QuerySet:
    """Overrides whose expiry is within the reminder time (PORTAL_OVERRIDE_REMINDER) from now."""
    from django.conf import settings
    from django.utils import timezone

    return queryset.filter(expires_at__isnull=False,
                           expires_at__lte=timezone.now() + settings.PORTAL_OVERRIDE_REMINDER)


class DigestObservationFilterSet(django_filters.FilterSet):
    origin = django_filters.ChoiceFilter(
        field_name="origin", choices=DigestOrigin.choices,
        label="registry (the portal's own checks), cluster (what the controller reported running) or module (the "
              "module became Ready on the digest, or failed on it).",
    )
    digest = django_filters.CharFilter(field_name="digest", label="Exact digest, e.g. sha256:….")
    since = UtcDateTimeFilter(field_name="observed_at", lookup_expr="gte",
                                             label="Observed at or after this ISO 8601 time.")
    until = UtcDateTimeFilter(field_name="observed_at", lookup_expr="lt",
                                             label="Observed before this ISO 8601 time.")
    ordering = django_filters.OrderingFilter(
        fields=(("observed_at", "observedAt"),), label="observedAt or -observedAt (default: newest first)."
    )

    class Meta:
        model = DigestObservation
        fields: list[str] = []


class ObjectChangeFilterSet(django_filters.FilterSet):
    objectType = django_filters.ChoiceFilter(  # noqa: N815
        method="filter_object_type", choices=[(k, k) for k in OBJECT_TYPES],
        label="override (modulepulloverride) or source (modulesource).",
    )
    objectId = django_filters.NumberFilter(field_name="object_id", label="The object's id.")  # noqa: N815
    objectName = django_filters.CharFilter(field_name="object_repr", label="The object's name.")  # noqa: N815
    user = django_filters.CharFilter(field_name="user_name", label="User name of the actor (token owner).")
    action = django_filters.MultipleChoiceFilter(field_name="action", choices=ChangeAction.choices,
                                                 label="create, update, delete, renew or import (repeatable).")
    context = django_filters.MultipleChoiceFilter(
        field_name="context", choices=ChangeContext.choices,
        label="Where the change came from: web, api, admin, scheduler, cluster or cli (repeatable).",
    )
    requestId = django_filters.UUIDFilter(field_name="request_id", label="X-Request-ID of the request.")  # noqa: N815
    since = UtcDateTimeFilter(field_name="time", lookup_expr="gte",
                                             label="At or after this ISO 8601 time.")
    until = UtcDateTimeFilter(field_name="time", lookup_expr="lt", label="Before this ISO 8601 time.")
    search = django_filters.CharFilter(method="filter_search", label="Text in the object name, user or message.")
    ordering = django_filters.OrderingFilter(fields=(("time", "time"),),
                                             label="time or -time (default: newest first).")

    class Meta:
        model = ObjectChange
        fields: list[str] = []

    def filter_object_type(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(object_type=OBJECT_TYPES[value]) if value else queryset

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _search(queryset, ("object_repr", "user_name", "message"), value)
