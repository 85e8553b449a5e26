"""`/metrics` for Prometheus, and the middleware that counts HTTP requests.

Access: `Authorization: Bearer <PORTAL_METRICS_TOKEN>`; without that setting the endpoint answers 404 (off).
In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) the samples of every process are summed from their files.
"""

from __future__ import annotations

import hmac
import os
import time
from collections import Counter

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from portal import metrics
from portal.middleware import SyncAndAsyncMiddleware


class OverrideCollector:
    """Live overrides by sync state and by status (the status badge's kind: the rollout verdict), read from the
    database per scrape (one query: the verdict's inputs are selected with the rows)."""

    def collect(self):
        from overrides.models import ModulePullOverride
        from overrides.presentation import override_status
        from overrides.verdict import with_verdict_inputs

        counts: Counter = Counter()
        for row in with_verdict_inputs(ModulePullOverride.objects.order_by()).iterator(chunk_size=2000):
            counts[(str(row.sync_state), override_status(row).kind)] += 1
        family = GaugeMetricFamily(f"{metrics.NAMESPACE}_overrides", "Live overrides by sync state and status.",
                                   labels=["sync_state", "status"])
        for (state, status), count in sorted(counts.items()):
            family.add_metric([state, status], count)
        yield family


def _authorized(request) -> bool:
    token = settings.PORTAL_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
def metrics_view(request):
    """The Prometheus text exposition of every process's metrics plus the database gauges."""
    if not settings.PORTAL_METRICS_TOKEN:
        return HttpResponseNotFound("Metrics are off: set PORTAL_METRICS_TOKEN.\n", content_type="text/plain")
    if not _authorized(request):
        response = HttpResponse("A valid metrics bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        body = generate_latest(processes)
    else:
        body = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(OverrideCollector())
    return HttpResponse(body + generate_latest(database), content_type=CONTENT_TYPE_LATEST)


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else "unmatched"


class HttpMetricsMiddleware(SyncAndAsyncMiddleware):
    """Counts each request by route (the URL name), method and status, with its latency. Sync and async."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._count(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._count(request, response, started)
        return response

    @staticmethod
    def _count(request, response, started: float) -> None:
        route, method = _route(request), request.method if request.method in _METHODS else "other"
        metrics.HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        metrics.HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
