"""`python -m portal.metrics_server`: /metrics of a worker pod's qcluster processes (they serve no HTTP).

The container's worker role starts it beside the qcluster; it sums the samples the qcluster's processes wrote
to `PROMETHEUS_MULTIPROC_DIR` and answers only `Authorization: Bearer <PORTAL_METRICS_TOKEN>`, on
`PORTAL_METRICS_PORT` (default 9100). The database gauges (overrides by state) come from the web pods' /metrics.
"""

from __future__ import annotations

import hmac
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess


class MetricsHandler(BaseHTTPRequestHandler):
    token = ""

    def log_message(self, *args) -> None:  # scrapes every few seconds would drown the worker's log
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        given = self.headers.get("Authorization", "")
        if self.path.split("?", 1)[0] != "/metrics":
            return self._answer(404, b"Only /metrics here.\n", "text/plain")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return self._answer(401, b"A valid metrics bearer token is required.\n", "text/plain")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    token, directory = os.environ.get("PORTAL_METRICS_TOKEN", ""), os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not token or not directory:
        print("metrics server off: PORTAL_METRICS_TOKEN and PROMETHEUS_MULTIPROC_DIR are needed", file=sys.stderr)
        return 0
    MetricsHandler.token = token
    port = int(os.environ.get("PORTAL_METRICS_PORT", "9100"))
    ThreadingHTTPServer(("0.0.0.0", port), MetricsHandler).serve_forever()  # noqa: S104 - the pod's port
    return 0


if __name__ == "__main__":
    sys.exit(main())
