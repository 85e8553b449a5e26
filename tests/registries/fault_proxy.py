"""A proxy in front of a registry that answers injected faults (429, 503, 500) and paginates tag lists."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import requests

from tests.registries.http import QuietHandler, ThreadedServer
from tests.registries.local import DEFAULT_PATH

if TYPE_CHECKING:
    from tests.registries.local import LocalRegistry


class FaultProxy(ThreadedServer):
    """An HTTP proxy in front of a registry that answers a chosen fault instead when one is set:
    `set_fault(429, retry_after="120")`, `set_fault(503, retry_after=<HTTP date>)`, `set_fault(500)`; `clear()`.
    `hits` counts requests that reached it.

    It also paginates tag lists (`paginate_tags`, on by default): distribution 2.8 ignores `?n=` on
    `/tags/list` and returns every tag at once, while distribution 3, Harbor, Docker Hub, GHCR... honour `n`
    and `last` and send `Link: <...>; rel="next"` (OCI distribution spec). The proxy does what they do, from
    the real registry's full list, so clients' pagination is exercised against real data."""

    def __init__(self, upstream: LocalRegistry) -> None:
        self.upstream = upstream
        self.fault: tuple[int, dict[str, str]] | None = None
        self.hits = 0
        self.paginate_tags = True
        self._session = requests.Session()
        super().__init__(_ProxyHandler)
        self.repo = f"{self.host}/{DEFAULT_PATH}"

    def set_fault(self, status: int, retry_after: str | None = None) -> None:
        self.fault = (status, {"Retry-After": retry_after} if retry_after else {})

    def clear(self) -> None:
        self.fault = None

    def source(self, **overrides) -> SimpleNamespace:
        return self.upstream.source(**{"repo": self.repo, **overrides})

    def close(self) -> None:
        super().close()
        self._session.close()


class _ProxyHandler(QuietHandler):
    def _handle(self) -> None:
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        proxy.hits += 1
        if proxy.fault is not None:
            status, headers = proxy.fault
            body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected fault"}]}).encode()
            return self.reply(status, body, {"Content-Type": "application/json", **headers})
        forward = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        paginate = proxy.paginate_tags and self.command == "GET" and parts.path.endswith("/tags/list") and "n" in query
        upstream = proxy._session.request(self.command, proxy.upstream.url + (parts.path if paginate else self.path),
                                          headers=forward, timeout=10, allow_redirects=False)
        keep = ("content-type", "docker-content-digest", "www-authenticate", "link", "retry-after", "location")
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in keep}
        body = upstream.content
        if paginate and upstream.status_code == 200:
            data = upstream.json()
            tags = sorted(data.get("tags") or [])
            if "last" in query:
                tags = [t for t in tags if t > query["last"][0]]
            size = int(query["n"][0])
            page, rest = tags[:size], tags[size:]
            body = json.dumps({"name": data.get("name"), "tags": page}).encode()
            headers["Content-Type"] = "application/json"
            if rest:
                headers["Link"] = f'<{parts.path}?last={page[-1]}&n={size}>; rel="next"'
        self.reply(upstream.status_code, body, headers)

    do_GET = do_HEAD = _handle  # noqa: N815 - http.server's naming
