"""The HTTP face of the emulator: routes, content types, discovery documents and watch streams."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.kube.errors import (
    FAULT_MESSAGES,
    ApiError,
    bad_request,
    method_not_allowed,
    resource_not_found,
    unsupported_patch,
)
from tests.kube.schema import GROUP, version_priority
from tests.kube.selectors import SelectorError, field_matcher, label_matcher
from tests.kube.store import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, WriteOptions

if TYPE_CHECKING:
    from tests.kube.emulator import KubeEmulator

MAIN_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
BODY_TYPES = ("application/json", "application/yaml", "")


class Server(ThreadingHTTPServer):
    """One listening socket; the emulator makes a new one on the same port after ``set_down(False)``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a real API server's backlog: 50 clients connecting at once are queued, not reset

    def __init__(self, address: tuple[str, int], emulator: KubeEmulator):
        self.emulator = emulator
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    """Answers one connection (HTTP/1.1 keep-alive, as the kubernetes client's urllib3 pool expects)."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: otherwise Nagle + delayed ACK cost ~40 ms per keep-alive request.
    disable_nagle_algorithm = True
    wbufsize = -1
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the emulator keeps its own request log

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        emu = self.server.emulator
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        record = emu._record_request(self.command, url.path, query, content_type,
                                     {k.lower(): v for k, v in self.headers.items()})
        code, payload, headers = 500, {}, {}
        fault = emu._take_fault(self.command, url.path)
        if fault is not None:
            code, payload = fault.status, ApiError(fault.status, FAULT_MESSAGES.get(fault.status, "injected fault"),
                                                   details={}).to_status()
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        else:
            if emu.delay:
                time.sleep(emu.delay)
            try:
                if self.command == "GET" and query.get("watch") in ("1", "true"):
                    record.status = 200
                    self._watch(url.path, query)
                    return
                code, payload, warnings = self._route(url.path, query, raw, content_type)
                if warnings:
                    headers["Warning"] = warnings
            except ApiError as exc:
                code, payload = exc.code, exc.to_status()
            except Exception as exc:  # noqa: BLE001 - an emulator bug must reach the test, not kill the thread
                emu.errors.append(traceback.format_exc())
                code, payload = 500, ApiError(500, f"Internal error occurred: emulator bug: {exc!r}").to_status()
        record.status = code
        self._send(code, payload, headers)

    def _send(self, code: int, payload: Any, headers: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for name, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, f'299 - "{_escape(item)}"' if name == "Warning" else item)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # ----- routing

    def _route(self, path: str, query: dict[str, str], raw: bytes, content_type: str) -> tuple[int, Any, list[str]]:
        emu, method = self.server.emulator, self.command
        parts = [p for p in path.split("/") if p]
        if parts in (["version"], ["api"], ["api", "v1"], ["apis"], ["apis", GROUP]) or (
                len(parts) == 3 and parts[:2] == ["apis", GROUP]):
            if method not in ("GET", "HEAD"):
                raise method_not_allowed()
            return 200, emu.discovery(parts), []
        if len(parts) < 4 or parts[:2] != ["apis", GROUP] or len(parts) > 6:
            raise resource_not_found()
        version, plural = parts[2], parts[3]
        name = parts[4] if len(parts) > 4 else None
        subresource = parts[5] if len(parts) > 5 else None
        store = emu.store
        store.resource(plural, version)  # 404 for an unserved version or an unknown resource
        if subresource not in (None, "status"):
            raise resource_not_found()
        opts = WriteOptions(actor="http", path=path, content_type=content_type or None,
                            dry_run=query.get("dryRun") == "All", field_validation=query.get("fieldValidation"),
                            field_manager=query.get("fieldManager"))
        if name is None:
            if method == "GET":
                limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
                return 200, store.list(plural, version, label_selector=query.get("labelSelector"),
                                       field_selector=query.get("fieldSelector"), limit=limit,
                                       continue_token=query.get("continue")), []
            if method == "POST":
                obj, warnings = store.create(plural, version, _decode_body(raw, content_type), opts)
                return 201, obj, warnings  # dry-run creates answer 201 too
            if method == "DELETE":
                return 200, store.delete_collection(plural, version, label_selector=query.get("labelSelector"),
                                                    field_selector=query.get("fieldSelector"), opts=opts), []
            raise method_not_allowed()
        if method == "GET":
            return 200, store.get(plural, version, name), []
        if method == "PUT":
            obj, warnings = store.update(plural, version, name, _decode_body(raw, content_type),
                                         subresource=subresource, opts=opts)
            return 200, obj, warnings
        if method == "PATCH":
            if content_type not in (MERGE_PATCH, JSON_PATCH, APPLY_PATCH):
                raise unsupported_patch(content_type)  # strategic merge patch included: CRs do not support it
            try:
                patch = yaml.safe_load(raw) if content_type == APPLY_PATCH else json.loads(raw or b"null")
            except (ValueError, yaml.YAMLError) as exc:
                raise bad_request(f"error decoding patch: {exc}") from exc
            obj, warnings, code = store.patch(plural, version, name, patch, content_type,
                                              subresource=subresource, opts=opts)
            return code, obj, warnings
        if method == "DELETE" and subresource is None:
            options = _decode_body(raw, "application/json") if raw.strip() else {}
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in query:
                    options[key] = query[key]
            return 200, store.delete(plural, version, name, options if isinstance(options, dict) else {}, opts), []
        raise method_not_allowed()

    # ----- watch

    def _watch(self, path: str, query: dict[str, str]) -> None:
        """Stream watch events as chunked JSON lines until ``timeoutSeconds``, a stop or a broken connection."""
        emu = self.server.emulator
        parts = [p for p in path.split("/") if p]
        if len(parts) != 4 or parts[:2] != ["apis", GROUP]:
            raise resource_not_found()
        version, plural = parts[2], parts[3]
        store = emu.store
        rd = store.resource(plural, version)
        try:
            labels, fields = label_matcher(query.get("labelSelector")), field_matcher(query.get("fieldSelector"))
        except SelectorError as exc:
            raise bad_request(str(exc)) from exc
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        since = query.get("resourceVersion") or "0"
        with store.lock:
            if since == "0":
                initial = [{"type": "ADDED", "object": store.view(rd, o, version)}
                           for _, o in sorted(store.objects[plural].items())]
                cursor = store.rv
            else:
                initial, cursor = [], int(since) if since.isdigit() else 0
                if cursor < store.compacted_rv:
                    expired = ApiError(410, f"too old resource version: {cursor} ({store.compacted_rv})")
                    initial = [{"type": "ERROR", "object": expired.to_status()}]
                    deadline = 0
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._chunks([e for e in initial if e["type"] == "ERROR" or (labels(e["object"]) and fields(e["object"]))])
            while time.monotonic() < deadline and not emu._stopping.is_set():
                with store.changed:
                    store.changed.wait(timeout=0.1)
                    fresh = [e for e in store.events if e.rv > cursor and e.resource == plural]
                    cursor = store.rv
                    out = [{"type": e.type, "object": store.view(rd, e.obj, version)} for e in fresh]
                self._chunks([e for e in out if labels(e["object"]) and fields(e["object"])])
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away, or set_down() cut the connection
        self.close_connection = True

    def _chunks(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _decode_body(raw: bytes, content_type: str) -> Any:
    """Decode a POST/PUT body: JSON or YAML, as the API server's serializers accept."""
    if content_type not in BODY_TYPES:
        raise ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                            "application/json, application/yaml, application/vnd.kubernetes.protobuf")
    try:
        return yaml.safe_load(raw) if content_type == "application/yaml" else json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def discovery_document(parts: list[str], resources: dict[str, Any], address: str) -> dict[str, Any]:
    """Discovery answers: /version, /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>."""
    versions = sorted({v for rd in resources.values() for v in rd.served}, key=version_priority)
    group_versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in versions]
    group = {"name": GROUP, "versions": group_versions, "preferredVersion": group_versions[0]}
    if parts == ["version"]:
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "gitCommit": "emulator",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.0",
                "compiler": "gc", "platform": "linux/amd64"}
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}
    if parts == ["api", "v1"]:
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
    if parts == ["apis", GROUP]:
        return {"kind": "APIGroup", "apiVersion": "v1", **group}
    version = parts[2]
    if version not in versions:
        raise resource_not_found()
    listed: list[dict[str, Any]] = []
    for rd in resources.values():
        if version not in rd.served:
            continue
        digest = hashlib.sha256(f"{GROUP}/{rd.storage}/{rd.plural}".encode()).digest()
        listed.append({"name": rd.plural, "singularName": rd.singular, "namespaced": False, "kind": rd.kind,
                       "verbs": MAIN_VERBS, "shortNames": list(rd.short_names),
                       "storageVersionHash": base64.b64encode(digest[:8]).decode()})
        listed.append({"name": f"{rd.plural}/status", "singularName": "", "namespaced": False, "kind": rd.kind,
                       "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{version}", "resources": listed}
