"""The login page: "Sign in with <provider>" when OIDC is configured, the local form unless PORTAL_LOCAL_LOGIN=0
(what the page shows comes from overrides/identity/context.py)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseForbidden

from overrides.identity.discovery import oidc_enabled

LOCAL_LOGIN_OFF = "Local login is turned off (PORTAL_LOCAL_LOGIN=0): sign in with the identity provider."


def login_page_policy(policy: str) -> str:
    """The portal's Content-Security-Policy with the issuer's origin added to `form-action`: the "Sign in with"
    form posts to the portal, which redirects the browser to the provider, and browsers hold that redirect to the
    submitting page's form-action."""
    if not policy or not oidc_enabled():
        return policy
    parts = urlsplit(settings.PORTAL_OIDC_ISSUER)
    origin = f"{parts.scheme}://{parts.netloc}"
    if re.search(r"(^|;)\s*form-action\s", policy):
        return re.sub(r"((?:^|;)\s*form-action\s[^;]*)", rf"\1 {origin}", policy, count=1)
    return policy


class PortalLoginView(auth_views.LoginView):
    """Django's LoginView plus the provider's button; refuses the form's POST when local login is off."""

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        policy = login_page_policy(getattr(settings, "PORTAL_CONTENT_SECURITY_POLICY", ""))
        if policy:
            response["Content-Security-Policy"] = policy
        return response

    def post(self, request, *args, **kwargs):
        if not settings.PORTAL_LOCAL_LOGIN:
            return HttpResponseForbidden(LOCAL_LOGIN_OFF, content_type="text/plain; charset=utf-8")
        return super().post(request, *args, **kwargs)
