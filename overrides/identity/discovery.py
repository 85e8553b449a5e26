"""Is the configured issuer usable? Its discovery document, checked for the admins' banner (cached briefly)."""

from __future__ import annotations

import time

import requests
from django.conf import settings

CHECK_TTL = 60.0  # seconds a verdict is kept, so pages do not each fetch the document
CHECK_TIMEOUT = 3.0
REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
_verdicts: dict[str, tuple[float, str]] = {}


def oidc_enabled() -> bool:
    return bool(settings.PORTAL_OIDC_ISSUER and settings.PORTAL_OIDC_CLIENT_ID)


def issuer_problem(*, fresh: bool = False) -> str:
    """"" when the issuer's discovery document is usable, else what failed, in one sentence."""
    issuer = settings.PORTAL_OIDC_ISSUER
    if not oidc_enabled():
        return ""
    cached = _verdicts.get(issuer)
    if cached and not fresh and time.monotonic() - cached[0] < CHECK_TTL:
        return cached[1]
    verdict = _check(issuer)
    if not verdict and not settings.PORTAL_OIDC_CLIENT_SECRET:
        verdict = ("PORTAL_OIDC_CLIENT_SECRET is not set (in Deckhouse: the Secret dex-client-<name> that Dex creates "
                   "for the DexClient, key clientSecret)")
    _verdicts[issuer] = (time.monotonic(), verdict)
    return verdict


def _check(issuer: str) -> str:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=CHECK_TIMEOUT)
    except requests.RequestException as exc:
        return f"the issuer {issuer} cannot be reached ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}, not a discovery document"
    try:
        document = response.json()
    except ValueError:
        return f"{url} is not JSON, so not a discovery document"
    if not isinstance(document, dict):
        return f"{url} is not a discovery document (not a JSON object)"
    missing = [key for key in REQUIRED if not isinstance(document.get(key), str) or not document.get(key)]
    if missing:
        return f"the discovery document at {url} lacks {', '.join(missing)}"
    if document["issuer"].rstrip("/") != issuer:
        return f'the discovery document names the issuer "{document["issuer"]}", not PORTAL_OIDC_ISSUER "{issuer}"'
    return ""
