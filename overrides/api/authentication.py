"""`Authorization: Bearer <token>` authentication against hashed ApiToken rows (NetBox v2 style)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from overrides.api.throttles import BadTokenThrottle
from overrides.models import ApiToken, hash_token

# Writing last_used_at on every request would turn each read into a write (and a SQLite write lock).
LAST_USED_RESOLUTION = timedelta(minutes=1)
KEYWORD = "Bearer"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates `Authorization: Bearer <token>`; sets request.user to the owner, request.auth to the token.

    A request without a Bearer header is left to the next authentication class (the browsable API's session);
    a Bearer header with an unknown, expired or inactive-owner token is refused with 401, and with 429 once its
    address has sent too many of those (BadTokenThrottle).
    """

    def authenticate(self, request) -> tuple | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        failures = BadTokenThrottle()  # past its rate an address gets 429, not another answer to a guess
        failures.refuse_if_blocked(request)
        try:
            if len(header) != 2:
                raise exceptions.AuthenticationFailed(
                    "Invalid Authorization header: expected `Authorization: Bearer <token>`."
                )
            token = self._token(header[1])
        except exceptions.AuthenticationFailed:
            failures.record_failure(request)
            raise
        touch_last_used(token)
        return token.user, token

    @sensitive_variables("raw", "plaintext")
    def _token(self, raw: bytes) -> ApiToken:
        try:
            plaintext = raw.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(plaintext)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("Token expired: ask for a new one (manage.py create_api_token).")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's owner is inactive.")
        return token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests, with this challenge.
        return f'{KEYWORD} realm="api"'


def touch_last_used(token: ApiToken) -> None:
    """Record the use, at most once per LAST_USED_RESOLUTION per token (a conditional UPDATE, no read)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token scheme in the OpenAPI schema (Swagger UI's "Authorize" button)."""

    target_class = "overrides.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `manage.py create_api_token USERNAME` or the admin's API tokens page.",
        }
