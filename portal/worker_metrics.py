"""`python -m portal.worker_metrics`: `/metrics` of a worker pod, which serves no HTTP otherwise.

The image's worker role starts it beside the qcluster (container/entrypoint); both share the container's
`PROMETHEUS_MULTIPROC_DIR`, so it answers with the samples of every qcluster process (registry checks and their
lateness, applies, read-backs). Access as on the web pods (`portal.monitoring`): `Authorization: Bearer
<PORTAL_METRICS_TOKEN>`, 404 when that setting is empty. It listens on `PORTAL_WORKER_METRICS_PORT`.
The gauges read from the database (overrides by state) come from the web pods only, so they are not doubled.
"""

from __future__ import annotations

import hmac
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger("portal.worker_metrics")


def samples() -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


class MetricsHandler(BaseHTTPRequestHandler):
    token = ""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # Prometheus scrapes every 30 s: no access log

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        from prometheus_client import CONTENT_TYPE_LATEST

        if self.path.split("?")[0] != "/metrics" or not self.token:
            self._reply(404, b"Not found (metrics are at /metrics, with PORTAL_METRICS_TOKEN set).\n")
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            self._reply(401, b"A valid metrics bearer token is required.\n",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
            return
        try:
            body = samples()
        except Exception:  # noqa: BLE001 - a half-written sample file must not kill the server
            logger.exception("reading the metrics files failed")
            self._reply(500, b"Reading the metrics failed.\n")
            return
        self._reply(200, body, CONTENT_TYPE_LATEST)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.conf import settings

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SystemExit("mpo-portal: PROMETHEUS_MULTIPROC_DIR must be set (the worker role sets it)")
    MetricsHandler.token = settings.PORTAL_METRICS_TOKEN
    server = ThreadingHTTPServer(("", settings.PORTAL_WORKER_METRICS_PORT), MetricsHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
