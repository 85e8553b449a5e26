"""A proxy that forwards everything to a registry and records each request: an independent count of checks."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class CountingProxy:
    """Forwards HEAD/GET to a registry and records each request: `requests` = [(time.time(), method, path)]."""

    def __init__(self, upstream) -> None:
        self.upstream = upstream
        self.requests: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.requests.append((time.time(), self.command, self.path.split("?", 1)[0]))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
                answer = proxy._session.request(self.command, proxy.upstream.url + self.path, headers=headers,
                                                timeout=10, allow_redirects=False)
                body = b"" if self.command == "HEAD" else answer.content
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() in ("content-type", "docker-content-digest", "www-authenticate", "link"):
                        self.send_header(name, value)
                length = answer.headers.get("Content-Length", "0") if self.command == "HEAD" else str(len(body))
                self.send_header("Content-Length", length)
                self.end_headers()
                if body:
                    self.wfile.write(body)

            do_HEAD = do_GET = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.repo = f"{self.host}/{upstream.repo.split('/', 1)[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, suffix: str, method: str = "HEAD") -> int:
        with self._lock:
            return sum(1 for _, m, p in self.requests if m == method and p.endswith(suffix))

    def times(self, suffix: str, method: str = "HEAD") -> list[float]:
        with self._lock:
            return [t for t, m, p in self.requests if m == method and p.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._session.close()
