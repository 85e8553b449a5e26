"""The portal's three roles and the provider groups that grant them (one home for both).

Each role is a Django group created by a migration (0007b_roles). A user's roles come from the provider's
groups on every sign-in; nothing is kept from an earlier sign-in.
- viewer: view permissions on everything but secrets (the API tokens of others);
- developer: viewer, plus add / change (renew) / delete of overrides;
- admin: every permission of the portal, the Django admin (is_staff) and superuser.
"""

from __future__ import annotations

from django.conf import settings

VIEWER, DEVELOPER, ADMIN = "viewer", "developer", "admin"
ROLES = (VIEWER, DEVELOPER, ADMIN)

VIEWER_HIDDEN = ("apitoken",)  # view permissions a viewer lacks: others' tokens are secrets
DEVELOPER_PERMS = ("add_modulepulloverride", "change_modulepulloverride", "delete_modulepulloverride")


def role_permission_query(role: str, permission_model):
    """The permissions a role holds: viewer every overrides view permission but the hidden ones (so a new model
    is readable without a new migration), developer also the override writes, admin every overrides and auth
    permission."""
    overrides = permission_model.objects.filter(content_type__app_label="overrides")
    viewer = overrides.filter(codename__startswith="view_").exclude(
        codename__in=[f"view_{model}" for model in VIEWER_HIDDEN])
    if role == VIEWER:
        return viewer
    if role == DEVELOPER:
        return viewer | overrides.filter(codename__in=DEVELOPER_PERMS)
    if role == ADMIN:
        return permission_model.objects.filter(content_type__app_label__in=("overrides", "auth"))
    raise ValueError(f"unknown role {role!r}")


def grant_role_permissions(group_model, permission_model) -> None:
    """Create the role groups (if missing) and set their permissions; used by the migration."""
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(role_permission_query(role, permission_model).distinct())


def ensure_roles() -> None:
    """The role groups, created with their permissions if missing (a flushed or hand-edited database)."""
    from django.contrib.auth.models import Group, Permission

    if Group.objects.filter(name__in=ROLES).count() != len(ROLES):
        grant_role_permissions(Group, Permission)


def group_roles() -> dict[str, str]:
    """Provider group → role, from PORTAL_OIDC_*_GROUPS (a group in several lists gets the highest role)."""
    mapping: dict[str, str] = {}
    for role, groups in (
        (VIEWER, settings.PORTAL_OIDC_VIEWER_GROUPS),
        (DEVELOPER, settings.PORTAL_OIDC_DEVELOPER_GROUPS),
        (ADMIN, settings.PORTAL_OIDC_ADMIN_GROUPS),
    ):
        for group in groups:
            mapping[group] = role
    return mapping


def roles_for(provider_groups: list[str]) -> set[str]:
    mapping = group_roles()
    return {mapping[group] for group in provider_groups if group in mapping}


def refusal_message(provider_groups: list[str]) -> str:
    """Why a user without a mapped group cannot sign in, in words they can take to an admin."""
    wanted = sorted(group_roles())
    have = ", ".join(sorted(provider_groups)) if provider_groups else "no groups"
    need = ", ".join(wanted) if wanted else "none are configured (PORTAL_OIDC_*_GROUPS)"
    return (f"Your account is in none of the groups that give a role in this portal. The identity provider "
            f"reported {have}; a role needs one of: {need}. Ask an admin to add you to one of them.")
