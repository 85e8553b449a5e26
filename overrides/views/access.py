"""Who may do what in the web UI: every page needs a login and the view permission of what it shows (the
API's rule: `overrides.view_*`), every write a model permission.

Templates hide the buttons a user may not use (`perms.overrides.*`); these decorators refuse the request
anyway, so a hand-made POST gets a 403 rather than a change.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from overrides.audit import Actor
from overrides.models import ChangeContext


def web_actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, context=ChangeContext.WEB)


def require_perm(*perms: str) -> Callable:
    """Login (redirect to /login/) and then the given permissions (403 without them)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perms(perms):
                raise PermissionDenied("You do not have permission to do this.")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


OVERRIDE_VIEW = "overrides.view_modulepulloverride"
SOURCE_VIEW = "overrides.view_modulesource"
AUDIT_VIEW = "overrides.view_objectchange"
OVERRIDE_ADD = "overrides.add_modulepulloverride"
OVERRIDE_CHANGE = "overrides.change_modulepulloverride"
OVERRIDE_DELETE = "overrides.delete_modulepulloverride"
SOURCE_ADD = "overrides.add_modulesource"
SOURCE_CHANGE = "overrides.change_modulesource"
SOURCE_DELETE = "overrides.delete_modulesource"
