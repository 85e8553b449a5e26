"""social-auth pipeline steps: refuse a user without a role, then set the user's roles from the provider's groups.

Listed in settings.SOCIAL_AUTH_PIPELINE. `require_role` runs before `create_user` (a refused user is never
created); `sync_roles` runs last and replaces every group membership of the user with what this sign-in's
groups give: the role groups, plus any Django group named like a provider group (the groups that module
scopes restrict, see overrides/scopes.py). Nothing is kept from an earlier sign-in.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import Group
from django.db import transaction
from social_core.exceptions import AuthPolicyError

from overrides.identity import roles

logger = logging.getLogger("overrides.identity")


class NoPortalRole(AuthPolicyError):
    """The provider's groups give no portal role: the sign-in is refused with this message."""

    def __init__(self, backend, message: str) -> None:
        super().__init__(backend, code="authentication_disallowed", stage="pipeline")
        self.message = message

    def __str__(self) -> str:
        return self.message


def _provider_groups(groups) -> list[str]:
    return [group for group in (groups or []) if isinstance(group, str)]


def require_role(backend, details, groups=None, user=None, **kwargs):
    """Refuse the sign-in unless a provider group maps to a role; an existing user refused loses every role."""
    provider_groups = _provider_groups(groups)
    granted = roles.roles_for(provider_groups)
    if not granted:
        if user is not None:
            _set_memberships(user, set(), provider_groups)
        logger.info("Sign-in refused for %s: no mapped group in %s", details.get("email") or "?", provider_groups)
        raise NoPortalRole(backend, roles.refusal_message(provider_groups))
    if not details.get("username"):
        # Dex gives `preferred_username` only for some connectors: fall back to the e-mail's local part.
        email = details.get("email") or ""
        details = {**details, "username": email.split("@")[0] or kwargs.get("uid") or ""}
    return {"details": details, "portal_roles": granted, "provider_groups": provider_groups}


def sync_roles(user=None, details=None, portal_roles=None, provider_groups=None, **kwargs):
    """Make the user's groups and admin flags exactly what this sign-in's groups give, and keep the e-mail the
    provider gives now (social-auth's `user_details` never overwrites an e-mail; the audit records it)."""
    if user is None:
        return
    email = (details or {}).get("email") or ""
    if email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
    _set_memberships(user, set(portal_roles or ()), provider_groups or [])


@transaction.atomic
def _set_memberships(user, granted: set[str], provider_groups: list[str]) -> None:
    roles.ensure_roles()
    wanted = set(granted) | ({name for name in provider_groups if name not in roles.ROLES} if granted else set())
    user.groups.set(Group.objects.filter(name__in=wanted))
    admin = roles.ADMIN in granted
    if user.is_staff != admin or user.is_superuser != admin:
        user.is_staff = user.is_superuser = admin
        user.save(update_fields=["is_staff", "is_superuser"])
    for cache in ("_perm_cache", "_group_perm_cache", "_user_perm_cache"):
        if hasattr(user, cache):
            delattr(user, cache)
