"""Registry push notifications: `POST /api/v1/webhooks/registry/` makes the overrides of a pushed image due now.

Accepted bodies:

- the CNCF distribution notification envelope (media type `application/vnd.docker.distribution.events.v1+json`):
  `{"events": [{"action": "push", "target": {"repository", "tag", "digest", "mediaType", "url"},
  "request": {"host"}}]}`; events without a tag (blob uploads, pushes by digest) and other actions are ignored;
- Harbor's webhook: `{"type": "PUSH_ARTIFACT", "event_data": {"repository": {"repo_full_name"},
  "resources": [{"tag", "resource_url"}]}}`; other Harbor event types are ignored.

Authentication: the shared secret `settings.PORTAL_WEBHOOK_SECRET`, sent as `Authorization: Bearer <secret>`
(distribution's `notifications.endpoints[].headers`) or as the bare `Authorization: <secret>` Harbor sends; compared
in constant time. An empty secret disables the endpoint (404 saying so).

An event is only a trigger: the overrides whose image `<source repo>/<name>:<tag>` it names are made due now and
their checks enqueued (`polling.request_checks`), and the digest is then read from the registry like any other
check; the event's digest is never trusted. The repository path, the module (its last component) and the tag must
match; the host is not compared, since a registry names itself by whatever Host its clients used (an internal
name, an IP, with or without a port), and with one override per module name a wrong guess costs one extra HEAD
while a missed match would cost a whole scan interval.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from overrides.models import ModulePullOverride
from overrides.polling import checks as polling
from portal.json_input import JsonInputError, parse_json
from registry.auth import registry_host, split_repo

logger = logging.getLogger("overrides.polling.webhooks")

MAX_BODY = 1024 * 1024  # distribution batches events; a body this large is not a notification
MAX_PUSHES = 1000


class WebhookError(Exception):
    """A body the endpoint cannot use: answered 400 with this message."""


@dataclass(frozen=True)
class PushedImage:
    """`<host>/<repository>:<tag>` as the registry reported it (host may be empty)."""

    host: str
    repository: str
    tag: str


def _error(status: int, detail: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _authorized(request: HttpRequest, secret: str) -> bool:
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        header = header[7:].strip()
    return bool(header) and hmac.compare_digest(header.encode(), secret.encode())


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def distribution_pushes(payload: dict) -> list[PushedImage]:
    """Tag pushes in a CNCF distribution envelope."""
    events = payload.get("events")
    if not isinstance(events, list):
        raise WebhookError('"events" must be a list of notification events.')
    pushes = []
    for event in events:
        if not isinstance(event, dict) or _text(event.get("action")) != "push":
            continue
        target = event.get("target") if isinstance(event.get("target"), dict) else {}
        request = event.get("request") if isinstance(event.get("request"), dict) else {}
        repository, tag = _text(target.get("repository")), _text(target.get("tag"))
        if not repository or not tag:
            continue  # a blob, or a manifest pushed by digest: no tag to match
        host = _text(request.get("host")) or urlsplit(_text(target.get("url"))).netloc
        pushes.append(PushedImage(host.lower(), repository.strip("/"), tag))
    return pushes


def harbor_pushes(payload: dict) -> list[PushedImage]:
    """Tag pushes in a Harbor webhook (`PUSH_ARTIFACT`; other event types carry none)."""
    if _text(payload.get("type")).upper() != "PUSH_ARTIFACT":
        return []
    data = payload.get("event_data")
    if not isinstance(data, dict):
        raise WebhookError('"event_data" must be an object.')
    repository = data.get("repository") if isinstance(data.get("repository"), dict) else {}
    full_name = _text(repository.get("repo_full_name")).strip("/")
    resources = data.get("resources")
    if not full_name or not isinstance(resources, list):
        raise WebhookError('"event_data" needs "repository.repo_full_name" and a "resources" list.')
    pushes = []
    for resource in resources:
        if not isinstance(resource, dict) or not _text(resource.get("tag")):
            continue
        url = _text(resource.get("resource_url"))
        host = registry_host(url) if "/" in url else ""
        pushes.append(PushedImage(host, full_name, _text(resource.get("tag"))))
    return pushes


def parse_notification(body: bytes) -> list[PushedImage]:
    """The tag pushes a notification body reports; WebhookError for anything that is not a notification."""
    try:
        payload = parse_json(body)
    except JsonInputError as exc:
        raise WebhookError(str(exc)) from None
    if isinstance(payload, dict) and "events" in payload:
        return distribution_pushes(payload)
    if isinstance(payload, dict) and "type" in payload:
        return harbor_pushes(payload)
    raise WebhookError('Not a registry notification: expected a distribution envelope {"events": [...]} or a '
                       'Harbor webhook {"type": "PUSH_ARTIFACT", "event_data": {...}}.')


def matching_overrides(pushes: list[PushedImage]) -> list[ModulePullOverride]:
    """Live overrides whose image is one of the pushed ones (path, module and tag; see the module docstring)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for push in pushes:
        path_part, _, module = push.repository.rpartition("/")
        wanted.setdefault((module, push.tag), set()).add(path_part)
    candidates = ModulePullOverride.objects.select_related("source").filter(name__in={m for m, _ in wanted})
    return [o for o in candidates if _repo_path(o.source.repo) in wanted.get((o.name, o.image_tag), set())]


def _repo_path(repo: str) -> str:
    return split_repo(repo)[1]


@csrf_exempt
def registry_webhook(request: HttpRequest) -> JsonResponse:
    """Receive a registry push notification and check the overrides of the pushed images now."""
    secret = settings.PORTAL_WEBHOOK_SECRET
    if not secret:
        return _error(404, "Registry webhooks are disabled: set PORTAL_WEBHOOK_SECRET to enable this endpoint.")
    if request.method != "POST":
        return _error(405, "Send registry notifications with POST.", Allow="POST")
    if not _authorized(request, secret):
        return _error(401, "Missing or wrong webhook secret: send 'Authorization: Bearer <PORTAL_WEBHOOK_SECRET>'.",
                      **{"WWW-Authenticate": 'Bearer realm="registry-webhook"'})
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        return _error(413, f"The notification is larger than {MAX_BODY} bytes.")
    try:
        pushes = parse_notification(request.body)
    except RequestDataTooBig:
        return _error(413, f"The notification is larger than {MAX_BODY} bytes.")
    except WebhookError as exc:
        return _error(400, str(exc))
    if len(pushes) > MAX_PUSHES:
        return _error(400, f"Too many pushes in one notification (at most {MAX_PUSHES}).")
    overrides = matching_overrides(pushes)
    polling.request_checks([o.pk for o in overrides])
    names = sorted(o.name for o in overrides)
    if pushes:
        logger.info("registry webhook: %s tag push(es); checking %s", len(pushes), ", ".join(names) or "nothing")
    return JsonResponse({"pushes": len(pushes), "checking": names}, status=202)


urlpatterns = [
    path("registry/", registry_webhook, name="registry-webhook"),
]
