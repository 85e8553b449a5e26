"""Probes for Kubernetes: `/livez` (the process answers) and `/readyz` (it can serve: database and broker).

- `/livez` touches nothing outside the process, so a database outage never makes Kubernetes restart the web pods.
- `/readyz` answers 200 only when the database answers, every migration is applied and the django-q2 broker
  answers; else 503 with `{"status": "unavailable", "failing": ["database", ...], "checks": {...}}` naming the
  failing parts in words (never a credential: messages name only the kind of failure).
`HealthProbeMiddleware`, first in `MIDDLEWARE`, answers both (and Prometheus's `/metrics`) before anything reads
the Host header: the kubelet and Prometheus come to the pod's IP, which is not in `PORTAL_ALLOWED_HOSTS`, and need
no session, CSRF or TLS redirect.
"""

from __future__ import annotations

import logging
import threading

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.middleware import SyncAndAsyncMiddleware

logger = logging.getLogger("portal.health")

BROKER_TIMEOUT = 2.0  # seconds a Redis ping may take before the broker counts as down
_migrated = threading.Event()  # once every migration was seen applied, a process never checks again


class HealthProbeMiddleware(SyncAndAsyncMiddleware):
    """Answers `/livez`, `/readyz` and `/metrics` itself, before host validation and every other middleware. Sync
    and async (under the ASGI server a sync-only middleware would give every request, rollout waits included, a
    thread)."""

    def __call__(self, request):
        view = PROBES.get(request.path_info)
        if iscoroutinefunction(self):
            return sync_to_async(view)(request) if view is not None else self.get_response(request)
        return view(request) if view is not None else self.get_response(request)


@require_safe
@never_cache
def livez(request):
    return JsonResponse({"status": "ok"})


def _database() -> str:
    """'' when the database answers and is migrated, else what is wrong."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness: database unreachable: %s", type(exc).__name__)
        return "database unreachable"
    if _migrated.is_set():
        return ""
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return "database unreachable"
    if pending:
        return f"database not migrated: {len(pending)} migration(s) pending (run the migrate role)"
    _migrated.set()
    return ""


def _broker() -> str:
    """'' when the django-q2 broker answers (the ORM broker is the database itself)."""
    url = settings.Q_CLUSTER.get("redis")
    if not url:
        return ""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        logger.warning("readiness: broker unreachable: %s", type(exc).__name__)
        return "broker (Redis) unreachable"
    finally:
        client.close()
    return ""


@require_safe
@never_cache
def readyz(request):
    checks = {"database": _database(), "broker": _broker()}
    failing = [name for name, problem in checks.items() if problem]
    body = {"status": "unavailable" if failing else "ok", "failing": failing,
            "checks": {name: problem or "ok" for name, problem in checks.items()}}
    return JsonResponse(body, status=503 if failing else 200)


def metrics(request):
    """Prometheus's `/metrics` (`portal.monitoring`, with its own bearer-token check), also scraped by pod IP."""
    from portal.monitoring import metrics_view

    return metrics_view(request)


PROBES = {"/livez": livez, "/readyz": readyz, "/metrics": metrics}


# --- outages while serving -------------------------------------------------------------------------

OUTAGE_RETRY_AFTER = "5"


def is_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (not a bug such as an IntegrityError): worth a 503 and a retry."""
    return isinstance(exc, (OperationalError, InterfaceError))


def outage_body(request) -> dict:
    request_id = str(getattr(request, "id", "") or "")
    return {"detail": "The portal's database is unavailable. Retry shortly: every change is saved whole or not at all.",
            "requestId": request_id}


class DatabaseOutageMiddleware(SyncAndAsyncMiddleware):
    """A database outage outside the API (UI pages, admin, webhooks): 503 with Retry-After, not a 500 page.
    The API answers the same through its exception handler (`overrides.api.exceptions`)."""

    def __call__(self, request):
        return self.get_response(request)  # under ASGI the coroutine; Django calls process_exception alike

    def process_exception(self, request, exc):
        if not is_outage(exc):
            return None
        logger.warning("database unavailable while serving %s: %s", request.path, type(exc).__name__)
        response = JsonResponse(outage_body(request), status=503)
        response["Retry-After"] = OUTAGE_RETRY_AFTER
        return response
