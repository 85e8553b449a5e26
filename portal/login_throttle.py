"""Sign-in throttling with django-axes: failures are counted per user name and per client address, both locked
for `PORTAL_LOGIN_LOCKOUT_SECONDS` after `PORTAL_LOGIN_FAILURE_LIMIT` failures, and every failure is logged
(axes logs "AXES: ... login failure by {username, ip_address, ...}" at WARNING, without the password).

The lockout answer is the login page again with 429, `Retry-After` and "try again in N s".
"""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("portal.login")


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For past `PORTAL_NUM_PROXIES` trusted proxies (the same
    rule as the API's throttles, DRF's NUM_PROXIES)."""
    return BaseThrottle().get_ident(request)


def seconds_left(username: str, ip_address: str | None) -> int:
    """Seconds until the newest counted failure of this user name or address falls out of the lockout window."""
    from axes.models import AccessAttempt

    cool_off = settings.AXES_COOLOFF_TIME
    match = Q(username=username) if username else Q(pk__in=[])
    if ip_address:
        match |= Q(ip_address=ip_address)
    newest = AccessAttempt.objects.filter(match).aggregate(newest=Max("attempt_time"))["newest"]
    if newest is None:
        return 1
    return max(1, math.ceil((newest + cool_off - timezone.now()).total_seconds()))


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page with the reason and the wait, 429 and Retry-After."""
    username = str((credentials or {}).get("username") or request.POST.get("username") or "")[:150]
    wait = seconds_left(username, getattr(request, "axes_ip_address", None) or client_ip(request))
    message = f"Too many failed sign-ins for this user or from this address: try again in {wait} s."
    logger.warning("login refused while locked out: user %r from %s", username, client_ip(request))
    form = AuthenticationForm(request, initial={"username": username})
    response = render(request, "registration/login.html", {"form": form, "lockout_message": message,
                                                           "next": request.POST.get("next", "")}, status=429)
    response["Retry-After"] = str(wait)
    return response
