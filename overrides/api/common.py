"""What the API views share: service error mapping, the actor, pagination and documented error responses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.settings import api_settings

from overrides.api.serializers import ErrorSerializer, validation_error_schema
from overrides.audit import Actor
from overrides.models import ChangeContext

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY

# Model field names (as the services report them) → API field names.
OVERRIDE_API_NAMES = {"name": "name", "source": "source", "image_tag": "imageTag", "scan_interval": "scanInterval",
                      "rollback": "rollback", "expires_at": "expiresAt", "reason": "reason"}
SOURCE_API_NAMES = {"name": "name", "repo": "registry.repo", "scheme": "registry.scheme",
                    "docker_cfg": "registry.dockerCfg", "ca": "registry.ca", "release_channel": "releaseChannel"}


class ApiPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_paginated_response_schema(self, schema: dict) -> dict:
        documented = super().get_paginated_response_schema(schema)
        descriptions = {"count": "Number of matching objects.", "next": "URL of the next page (null: last page).",
                        "previous": "URL of the previous page (null: first page).", "results": "This page."}
        for name, description in descriptions.items():
            documented["properties"][name]["description"] = description
        return documented


def api_actor(request) -> Actor:
    """The token's owner (or the session user), context "api", the request id."""
    return Actor.from_request(request, context=ChangeContext.API)


def api_validation_error(exc: DjangoValidationError, names: dict[str, str]) -> exceptions.ValidationError:
    """A service's ValidationError as a 400 keyed by API field names."""
    if not hasattr(exc, "error_dict"):
        return exceptions.ValidationError({NON_FIELD: exc.messages})
    detail: dict[str, list[str]] = {}
    for field, messages in exc.message_dict.items():
        key = NON_FIELD if field == "__all__" else names.get(field, field)
        detail.setdefault(key, []).extend(messages)
    return exceptions.ValidationError(detail)


@contextmanager
def service_errors(names: dict[str, str]) -> Iterator[None]:
    try:
        yield
    except DjangoValidationError as exc:
        raise api_validation_error(exc, names) from None


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the object's state."
    default_code = "conflict"


@contextmanager
def refusals_as_conflict() -> Iterator[None]:
    """A refused deletion (source in use, the builtin source) is a 409 with the service's message."""
    try:
        yield
    except DjangoValidationError as exc:
        raise Conflict(" ".join(exc.messages)) from None


def changelog_from_query(request) -> str:
    """DELETE's changelogMessage: the query parameter, or a JSON body's field."""
    value = request.query_params.get("changelogMessage")
    if value is None and isinstance(request.data, dict):
        value = request.data.get("changelogMessage")
    field = serializers.CharField(required=False, allow_blank=True, max_length=500)
    try:
        return field.run_validation(value) if value is not None else ""
    except exceptions.ValidationError as exc:
        raise exceptions.ValidationError({"changelogMessage": exc.detail}) from None


def path_name(kind: str) -> OpenApiParameter:
    return OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description=f"The {kind}'s name.")


def named_actions(kind: str, *actions: str):
    """Documents the `name` path parameter of every detail action of a viewset."""
    return extend_schema_view(**{a: extend_schema(parameters=[path_name(kind)]) for a in actions})


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


VALIDATION = OpenApiResponse(validation_error_schema(), description="Invalid input: which field, and what to change.")
AUTH_ERRORS = {
    401: error("No token, or an unknown or expired one (see WWW-Authenticate)."),
    403: error("The token is read-only, or its owner lacks the model permission."),
    429: error("Too many requests with this token, or too many invalid tokens from this address; retry after "
               "the Retry-After seconds."),
}
NOT_FOUND = {404: error("No such object.")}
