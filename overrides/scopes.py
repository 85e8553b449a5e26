"""The module-scope rule, in one place: who may change the override of which module.

A user is restricted when one of their groups has ModuleScope rows; they may then change (create, edit, renew,
delete) only overrides of modules matching a pattern of one of their groups. Superusers, system actors (the
scheduler, the cluster read-back, commands without a user) and users of groups without scopes are not
restricted. Reading is not scoped. The services call `require_module_scope` for every entry point (UI, API,
admin, CI tokens), so a refusal is the same everywhere: a `ModuleScopeDenied` (a PermissionDenied: 403 in the
API, the 403 page in the UI, a message in the admin) naming the rule, and nothing changed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from django.core.exceptions import PermissionDenied

from overrides.models import ModuleScope


class ModuleScopeDenied(PermissionDenied):
    """The module is outside the actor's module scope; the message names the rule that refused it."""


def scope_patterns(user) -> dict[str, list[str]] | None:
    """Group name → patterns restricting `user`, or None when the user is not restricted."""
    if user is None or not getattr(user, "pk", None) or user.is_superuser:
        return None
    rows = ModuleScope.objects.filter(group__user=user).select_related("group").order_by("group__name", "pattern")
    patterns: dict[str, list[str]] = {}
    for scope in rows:
        patterns.setdefault(scope.group.name, []).append(scope.pattern)
    return patterns or None


def module_in_scope(user, module: str) -> bool:
    patterns = scope_patterns(user)
    return patterns is None or any(fnmatchcase(module, p) for group in patterns.values() for p in group)


def require_module_scope(user, module: str) -> None:
    """Refuse a change of module `module` outside the user's scope, naming the rule."""
    patterns = scope_patterns(user)
    if patterns is None or any(fnmatchcase(module, p) for group in patterns.values() for p in group):
        return
    rules = "; ".join(f'group "{group}" may change {", ".join(items)}' for group, items in patterns.items())
    raise ModuleScopeDenied(
        f'Module "{module}" is outside your module scope ({rules}): nothing was changed. '
        "An admin sets module scopes in the admin, Module scopes."
    )
