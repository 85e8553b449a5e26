"""Failures as users should read them: HTTP answers and transport errors mapped to `RegistryError`.

Messages name the host, the repository or reference, and the ModuleSource field to fix (dockerCfg, ca, scheme);
they never contain a credential or a token.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import requests

from .errors import ErrorKind, RegistryError

if TYPE_CHECKING:
    from .transport import Target


def retry_after(value: str | None) -> datetime | None:
    """Retry-After as a UTC datetime: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    now = datetime.now(UTC)
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.astimezone(UTC), now)


def status_error(response: requests.Response, what: str, target: Target, codes: list[str] | None = None,
                 subject: str = "") -> RegistryError:
    """A non-success answer other than 401/403/404: rate limiting, or a registry error with its status."""
    status = response.status_code
    when = retry_after(response.headers.get("Retry-After"))
    if status == 429 or (status == 503 and when is not None):
        until = f"until {when:%Y-%m-%d %H:%M:%S} UTC" if when else "for a while (it did not say how long)"
        return RegistryError(
            ErrorKind.RATE_LIMITED,
            f"{what} is rate limiting requests (HTTP {status}): the portal waits {until} before asking again.",
            status=status, retry_after=when,
        )
    detail = f" ({', '.join(codes)})" if codes else ""
    hint = ""
    if status == 400 and target.scheme == "http":
        hint = f': if the registry serves HTTPS, set the scheme of ModuleSource "{target.name}" to HTTPS'
    elif status >= 500:
        hint = ": the registry has a problem; the portal tries again at the next check"
    about = f" for {subject}" if subject else ""
    return RegistryError(ErrorKind.REGISTRY_ERROR, f"{what} answered HTTP {status}{detail}{about}{hint}.",
                         status=status)


def auth_error(target: Target, repo_path: str, status: int, token_server: str = "",
               with_token: bool = False) -> RegistryError:
    """auth_failed naming the host and pointing at the source's dockerCfg (never at the secret itself)."""
    field = f'the dockerCfg of ModuleSource "{target.name}"'
    by = f"the token server {token_server} of {target.host}" if token_server else target.host
    if target.creds is None:
        message = (f"{by} requires credentials (HTTP {status}) and {field} is empty: add credentials for "
                   f"{target.host} to it.")
    elif with_token and repo_path:
        message = (f"{by} refused access to {target.host}/{repo_path} (HTTP {status}) with a token issued for the "
                   f"credentials for {target.host} in {field}: check that this account may pull it.")
    elif status == 403 and repo_path:
        message = (f"{by} denied access to {target.host}/{repo_path} (HTTP 403) for the credentials for "
                   f"{target.host} in {field}: give that account pull access, or fix the repository.")
    else:
        message = (f"authentication to {by} failed (HTTP {status}): check the credentials for {target.host} "
                   f"in {field}.")
    return RegistryError(ErrorKind.AUTH_FAILED, message, status=status)


_VERIFY_REASON_RE = re.compile(r"certificate verify failed: ([^(]+?)\s*(?:\(|'|\"|$)")


def tls_error(exc: Exception, what: str, ca: str, source: str) -> RegistryError:
    text = str(exc)
    field = f'the ca field of ModuleSource "{source}"'
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        match = _VERIFY_REASON_RE.search(text)
        reason = f" ({match.group(1).strip()})" if match else ""
        if ca:
            message = (f"the TLS certificate of {what} does not verify against the CA in {field}{reason}: "
                       "put the root CA that signed the registry's certificate there.")
        else:
            message = (f"the TLS certificate of {what} is not trusted{reason}: if the registry uses a private "
                       f"or self-signed CA, paste its PEM certificate into {field}.")
    elif "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
        message = (f"TLS handshake with {what} failed: it does not seem to speak HTTPS; if it serves plain "
                   f'HTTP, set the scheme of ModuleSource "{source}" to HTTP.')
    else:
        message = f"TLS connection to {what} failed: check {field} and the registry's certificate."
    return RegistryError(ErrorKind.TLS_FAILED, message)


def connection_error(exc: Exception, what: str, source: str) -> RegistryError:
    text = str(exc)
    if "Name or service not known" in text or "Temporary failure in name resolution" in text \
            or "nodename nor servname" in text or "NameResolutionError" in text:
        reason = "its name does not resolve"
    elif "Connection refused" in text or "Errno 111" in text:
        reason = "connection refused"
    elif "reset" in text.lower() or "aborted" in text.lower() or "RemoteDisconnected" in text:
        reason = "the connection was closed before an answer"
    elif "ProxyError" in text or isinstance(exc, requests.exceptions.ProxyError):
        reason = "the HTTP proxy refused the connection"
    else:
        reason = "no connection"
    return RegistryError(
        ErrorKind.CONNECTION_REFUSED,
        f'cannot connect to {what}: {reason}. Is the registry running, and are the repo host, port and scheme '
        f'of ModuleSource "{source}" right?',
    )
