"""The senders, one per channel kind, and the check of a channel's URL.

Each sender takes the event's JSON envelope and returns a `SendResult`: the HTTP status (None for e-mail or when
no answer came), an error in words that never holds the URL or a secret, and whether trying again may help
(timeouts, connection failures, 5xx, 408 and 429). Any 2xx is success. Redirects are not followed.

- generic webhook: the envelope as JSON, `X-Signature: sha256=<hex HMAC-SHA256 of the body>` with the channel's
  secret: the shape of Flux's generic-hmac provider, so its receivers work unchanged;
- Slack incoming webhook: `{"text": ...}`; Microsoft Teams Workflows webhook: a message with an Adaptive Card;
  both are a single JSON POST, written here rather than through a sender library so that every attempt's status
  code is known (and 202 counts);
- e-mail: Django's e-mail backend (SMTP settings from the environment, see README).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from overrides.models import ChannelKind

USER_AGENT = "mpo-portal-notifications/1"


@dataclass
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str = ""
    retry: bool = False


def signature(secret: str, body: bytes) -> str:
    """The `X-Signature` value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    timeout = settings.PORTAL_NOTIFY_TIMEOUT
    try:
        answer = requests.post(url, data=body, timeout=(timeout, timeout), allow_redirects=False,
                               headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    except requests.Timeout:
        return SendResult(False, None, f"no answer within {timeout:g}s", retry=True)
    except requests.ConnectionError:
        return SendResult(False, None, "connection failed (host unreachable or refused)", retry=True)
    except requests.RequestException as exc:
        return SendResult(False, None, f"request failed ({type(exc).__name__})")
    code = answer.status_code
    answer.close()
    if 200 <= code < 300:
        return SendResult(True, code)
    retry = code >= 500 or code in (408, 429)
    return SendResult(False, code, f"the receiver answered HTTP {code}", retry=retry)


def _text(envelope: dict[str, Any]) -> str:
    url = envelope.get("url") or ""
    return f"[MPO Portal] {envelope['summary']}" + (f" {url}" if url else "")


def send_webhook(target: str, secret: str, envelope: dict[str, Any]) -> SendResult:
    body = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    headers = {"X-Signature": signature(secret, body)} if secret else {}
    return _post(target, body, headers)


def send_slack(target: str, secret: str, envelope: dict[str, Any]) -> SendResult:
    return _post(target, json.dumps({"text": _text(envelope)}).encode(), {})


def send_teams(target: str, secret: str, envelope: dict[str, Any]) -> SendResult:
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": [
                {"type": "TextBlock", "text": f"MPO Portal: {envelope['type']}", "weight": "Bolder", "wrap": True},
                {"type": "TextBlock", "text": _text(envelope), "wrap": True}]}
    message = {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
    return _post(target, json.dumps(message).encode(), {})


def send_email(target: str, secret: str, envelope: dict[str, Any]) -> SendResult:
    body = _text(envelope) + "\n\n" + json.dumps(envelope["details"], indent=2, sort_keys=True, default=str)
    message = EmailMessage(subject=_text(envelope)[:200], body=body, to=[target],
                           connection=get_connection(timeout=settings.PORTAL_NOTIFY_TIMEOUT))
    try:
        message.send(fail_silently=False)
    except TimeoutError:
        return SendResult(False, None, "the mail server did not answer in time", retry=True)
    except smtplib.SMTPRecipientsRefused:
        return SendResult(False, None, "the mail server refused the recipient")
    except smtplib.SMTPResponseException as exc:
        return SendResult(False, None, f"the mail server answered {exc.smtp_code}", retry=exc.smtp_code >= 400
                          and exc.smtp_code < 500)
    except (OSError, smtplib.SMTPException) as exc:
        return SendResult(False, None, f"sending mail failed ({type(exc).__name__})", retry=True)
    return SendResult(True)


SENDERS = {ChannelKind.WEBHOOK: send_webhook, ChannelKind.SLACK: send_slack, ChannelKind.TEAMS: send_teams,
           ChannelKind.EMAIL: send_email}


# --- checking a target -------------------------------------------------------------------------------------------


def _portal_addresses(portal_host: str | None) -> set[tuple[str, int | None]]:
    """(host, port) pairs that are the portal itself: the host the request came to."""
    pairs = set()
    if portal_host:
        parts = urlsplit(f"//{portal_host}")
        pairs.add(((parts.hostname or "").lower(), parts.port))
    return pairs


def validate_target(kind: str, target: str, *, portal_host: str | None = None) -> str:
    """The channel's URL (or e-mail address) checked; returns the hint shown instead of it. ValidationError on
    `target`: not http(s), no host, the portal itself, or a host that does not resolve."""
    target = (target or "").strip()
    if kind == ChannelKind.EMAIL:
        try:
            validate_email(target)
        except ValidationError:
            raise ValidationError({"target": "Enter a valid e-mail address."}) from None
        return "…@" + target.rsplit("@", 1)[1]
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"target": "The URL must start with http:// or https:// and name a host."})
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        raise ValidationError({"target": "The URL's port is not a number between 1 and 65535."}) from None
    default_port = 443 if parts.scheme == "https" else 80
    for portal, portal_port in _portal_addresses(portal_host):
        if host == portal and (port or default_port) == (portal_port or default_port):
            raise ValidationError({"target": "The URL points at the portal itself."})
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, port or default_port, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise ValidationError({"target": f'The host "{host}" does not resolve.'}) from None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"
