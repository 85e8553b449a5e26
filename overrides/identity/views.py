"""The login page: "Sign in with <provider>" when OIDC is configured, the local form unless PORTAL_LOCAL_LOGIN=0
(what the page shows comes from overrides/identity/context.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseForbidden

LOCAL_LOGIN_OFF = "Local login is turned off (PORTAL_LOCAL_LOGIN=0): sign in with the identity provider."


class PortalLoginView(auth_views.LoginView):
    """Django's LoginView plus the provider's button; refuses the form's POST when local login is off."""

    def post(self, request, *args, **kwargs):
        if not settings.PORTAL_LOCAL_LOGIN:
            return HttpResponseForbidden(LOCAL_LOGIN_OFF, content_type="text/plain; charset=utf-8")
        return super().post(request, *args, **kwargs)
