"""Model permissions for API tokens and web sessions: view for reads, add/change/delete for writes."""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions, permissions

from overrides.models import ApiToken

READ_ONLY_TOKEN = "This API token is read-only: use a token with write access for this request."


class TokenModelPermissions(permissions.DjangoModelPermissions):
    """DjangoModelPermissions with view permissions for reads, plus read-only tokens.

    A view may name `permission_model` (the model whose permissions apply when its queryset is of another
    model, e.g. digest history → the override) and an action may name `permission_method` (the HTTP method
    whose permission it needs, e.g. renew's POST needs PATCH's, i.e. change).
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is not None and not token.write_enabled and request.method not in permissions.SAFE_METHODS:
            raise exceptions.PermissionDenied(READ_ONLY_TOKEN)
        if getattr(view, "_ignore_model_permissions", False):
            return True
        model = getattr(view, "permission_model", None) or self._queryset(view).model
        method = request.method
        if method not in permissions.SAFE_METHODS and getattr(view, "permission_method", None):
            method = view.permission_method
        return user.has_perms(self.get_required_permissions(method, model))


class ApiDocsAccess(permissions.BasePermission):
    """/api/schema/ and /api/docs/: anyone when PORTAL_API_DOCS_PUBLIC (the development default), else a login
    or a token."""

    def has_permission(self, request, view) -> bool:
        if settings.PORTAL_API_DOCS_PUBLIC:
            return True
        return bool(request.user and request.user.is_authenticated)


def _perm(model, action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def has_perm(request, model, action: str) -> bool:
    return request.user.has_perm(_perm(model, action))


def require_perm(request, model, action: str) -> None:
    """Refuse with 403 unless the user holds `<app>.<action>_<model>` (e.g. add, for an upsert that creates)."""
    if not has_perm(request, model, action):
        raise exceptions.PermissionDenied(f"You need the permission {_perm(model, action)} for this request.")
