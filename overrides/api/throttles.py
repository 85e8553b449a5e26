"""API rate limits (DRF throttles): per token, per address without credentials, and failed tokens per address.

Rates come from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (PORTAL_API_TOKEN_RATE, PORTAL_API_ANON_RATE,
PORTAL_API_BAD_TOKEN_RATE), read at each request. Counts live in Django's cache: per process with the default
local-memory cache, shared when CACHES points at a shared cache. A refused request is a 429 with Retry-After.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle

from overrides.models import ApiToken


class PortalRateThrottle(SimpleRateThrottle):
    """Reads its rate from the settings at each request (tests and operators may change them)."""

    def __init__(self) -> None:  # SimpleRateThrottle reads the rate in __init__; so do we, from live settings
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)


class TokenRateThrottle(PortalRateThrottle):
    """Requests of one token (a browsable-API session counts per user)."""

    scope = "token"

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AnonymousRateThrottle(PortalRateThrottle):
    """Requests without credentials, per client address."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class BadTokenThrottle(PortalRateThrottle):
    """Failed bearer tokens per client address: past the rate, every token from there waits (even a good one,
    so guessing gains nothing)."""

    scope = "bad_token"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refuse_if_blocked(self, request) -> None:
        """429 when this address has used up its failures."""
        if self.rate is None:
            return
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        if len(self.history) >= self.num_requests:
            raise exceptions.Throttled(wait=self.wait(), detail="Too many invalid tokens from this address.")

    def record_failure(self, request) -> None:
        if self.rate is not None:
            self.refuse_if_blocked(request)
            self.throttle_success()
