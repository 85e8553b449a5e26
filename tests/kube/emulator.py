"""A kube-apiserver emulator for the ``deckhouse.io`` ModulePullOverride, ModuleSource, Module and ModuleConfig
resources.

Usage::

    with KubeEmulator(mpo_versions=["v1alpha1", "v1alpha2"]) as emu:
        kubernetes.config.load_kube_config(config_file=emu.kubeconfig_path)
        ...
        emu.fail_next(2, status=503)   # the next two HTTP requests get 503
        emu.set_down(True)             # connection refused; set_down(False) listens on the same port
        emu.delay = 0.5                # every answer half a second late
        emu.writes(actor="http")       # every write that came over HTTP (what the portal wrote)

Served versions per Deckhouse release: ``["v1alpha1"]`` for 1.56-1.66, ``["v1alpha1", "v1alpha2"]``
for 1.67-1.75, ``["v1alpha2"]`` for 1.76+. ModuleSources and ModuleConfigs are always v1alpha1; Modules
are ``module_versions`` (``["v1alpha1"]`` today, ``["v1beta1"]`` for the package-system era; ``[]`` serves
neither Module nor ModuleConfig). The HTTP routes,
discovery and watch live in ``tests.kube.http``; the object rules in ``tests.kube.store``.

Objects are stored once (apiVersion = the newest served version) and served in every served
version: read as v1alpha2, an MPO written as v1alpha1 loses ``spec.source`` (pruned by the
v1alpha2 schema); a v1alpha2 write keeps the stored ``spec.source`` for v1alpha1 readers.
``get()``/``objects()`` without a version return that storage form, ``spec.source`` included.

Not emulated: managedFields and server-side-apply field ownership (apply is a create-or-merge),
Table and protobuf output, aggregated discovery, garbage-collector propagation policies,
namespaced resources, authentication (any token is accepted).
"""

from __future__ import annotations

import copy
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.kube import access, schema
from tests.kube.errors import ApiError
from tests.kube.http import Server, discovery_document
from tests.kube.schema import GROUP
from tests.kube.store import MERGE_PATCH, ObjectStore, WriteOptions, WriteRecord

ALIASES = {"mpo": "modulepulloverrides", "modulepulloverride": "modulepulloverrides",
           "ModulePullOverride": "modulepulloverrides", "ms": "modulesources", "modulesource": "modulesources",
           "ModuleSource": "modulesources", "module": "modules", "Module": "modules", "mc": "moduleconfigs",
           "moduleconfig": "moduleconfigs", "ModuleConfig": "moduleconfigs"}


@dataclass
class Fault:
    """Answer the next ``remaining`` matching requests with ``status`` instead of serving them."""

    remaining: int
    status: int
    method: str | None = None
    path_contains: str | None = None
    retry_after: int | None = None


@dataclass
class RequestRecord:
    """One HTTP request as the emulator saw it (headers lower-cased), for assertions on what a client sent."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    headers: dict[str, str]
    status: int = 0
    time: float = field(default_factory=time.time)


class KubeEmulator:
    """A threaded HTTP API server on 127.0.0.1 with a kubeconfig pointing at it."""

    def __init__(self, mpo_versions: Sequence[str] = ("v1alpha1", "v1alpha2"),
                 ms_versions: Sequence[str] = ("v1alpha1",), module_versions: Sequence[str] = ("v1alpha1",),
                 host: str = "127.0.0.1", port: int = 0):
        resources = {
            "modulepulloverrides": schema.load_resource("modulepulloverrides", tuple(mpo_versions)),
            "modulesources": schema.load_resource("modulesources", tuple(ms_versions)),
        }
        if module_versions:  # () serves no Module or ModuleConfig at all (a cluster without them, or no RBAC)
            resources["modules"] = schema.load_resource("modules", tuple(module_versions))
            resources["moduleconfigs"] = schema.load_resource("moduleconfigs", ("v1alpha1",))
        self.store = ObjectStore(resources)
        self.host, self.port = host, port
        self.delay: float = 0.0
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []  # tracebacks of emulator bugs (answered as 500): a test should see none
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._tmpdir: str | None = None
        self.kubeconfig_path: str = ""

    # ----- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> KubeEmulator:
        """Listen (on a free port the first time) and write the kubeconfig."""
        self._stopping.clear()
        self._listen()
        self._tmpdir = tempfile.mkdtemp(prefix="kube-emulator-")
        self.kubeconfig_path = str(Path(self._tmpdir) / "kubeconfig.yaml")
        Path(self.kubeconfig_path).write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator", "preferences": {},
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        }))
        return self

    def stop(self) -> None:
        """Stop serving, end watches and open connections, remove the kubeconfig."""
        self._stopping.set()
        self._unlisten()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        self._server = Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"kube-emulator-{self.port}", daemon=True)
        self._thread.start()

    def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()  # the listening socket is closed: new connections are refused
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # keep-alive connections would otherwise still be served
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    # ----- fault injection

    def fail_next(self, n: int = 1, status: int = 503, *, method: str | None = None,
                  path_contains: str | None = None, retry_after: int | None = None) -> None:
        """Answer the next ``n`` HTTP requests (optionally only a method / path part) with ``status``."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(Fault(n, status, method, path_contains, retry_after))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method) and (
                        fault.path_contains is None or fault.path_contains in path):
                    fault.remaining -= 1
                    return fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return None

    @property
    def is_down(self) -> bool:
        return self._server is None

    def set_down(self, down: bool) -> None:
        """Down: close the listening socket and cut open connections. Up: listen again on the same port."""
        if down and self._server is not None:
            self._unlisten()
        elif not down and self._server is None:
            self._listen()

    def _record_request(self, method: str, path: str, query: dict[str, str], content_type: str,
                        headers: dict[str, str]) -> RequestRecord:
        record = RequestRecord(method, path, query, content_type, headers)
        with self._lock:
            self.requests.append(record)
        access.record(method, path, query, headers)
        return record

    def discovery(self, parts: list[str]) -> dict[str, Any]:
        return discovery_document(parts, self.store.resources, f"{self.host}:{self.port}")

    # ----- direct state access (acts as kubectl: same code paths, same resourceVersion counter)

    @staticmethod
    def plural(resource: str) -> str:
        """``mpo``/``ModulePullOverride``/``modulepulloverride`` -> ``modulepulloverrides``."""
        return ALIASES.get(resource, resource)

    def served_versions(self, resource: str) -> tuple[str, ...]:
        return self.store.resources[self.plural(resource)].served

    def _version(self, resource: str, version: str | None, body: dict[str, Any] | None = None) -> str:
        if version:
            return version
        if body and "/" in str(body.get("apiVersion", "")):
            return str(body["apiVersion"]).split("/", 1)[1]
        return self.store.resources[self.plural(resource)].storage

    def objects(self, resource: str) -> list[dict[str, Any]]:
        """Every stored object of a resource, sorted by name, in storage form (all fields kept)."""
        plural = self.plural(resource)
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in sorted(self.store.objects[plural].items())]

    def get(self, resource: str, name: str, version: str | None = None) -> dict[str, Any] | None:
        """One object (storage form, or as served in ``version``), or None when it does not exist."""
        plural = self.plural(resource)
        with self.store.lock:
            if version is not None:
                try:
                    return self.store.get(plural, version, name)
                except ApiError:
                    return None
            found = [o for o in self.objects(plural) if o["metadata"]["name"] == name]
            return found[0] if found else None

    def create(self, resource: str, body: dict[str, Any], version: str | None = None,
               actor: str = "kubectl") -> dict[str, Any]:
        """Create like ``kubectl create``; apiVersion/kind are filled in when the body has none."""
        plural = self.plural(resource)
        version = self._version(plural, version, body)
        body = {"apiVersion": f"{GROUP}/{version}", "kind": self.store.resources[plural].kind, **body}
        return self.store.create(plural, version, body, WriteOptions(actor=actor))[0]

    def patch(self, resource: str, name: str, patch: Any, version: str | None = None, *,
              subresource: str | None = None, content_type: str = MERGE_PATCH,
              actor: str = "kubectl") -> dict[str, Any]:
        """Patch like ``kubectl patch --type merge`` (or ``json`` with a list and JSON_PATCH)."""
        plural = self.plural(resource)
        opts = WriteOptions(actor=actor, field_manager=actor)
        return self.store.patch(plural, self._version(plural, version), name, patch, content_type,
                                subresource=subresource, opts=opts)[0]

    def patch_status(self, resource: str, name: str, status: dict[str, Any], version: str | None = None,
                     actor: str = "controller") -> dict[str, Any]:
        """Merge ``status`` into the status subresource (what a controller does)."""
        return self.patch(resource, name, {"status": status}, version, subresource="status", actor=actor)

    def replace(self, resource: str, name: str, body: dict[str, Any], version: str | None = None, *,
                subresource: str | None = None, actor: str = "kubectl") -> dict[str, Any]:
        plural = self.plural(resource)
        return self.store.update(plural, self._version(plural, version, body), name, body,
                                 subresource=subresource, opts=WriteOptions(actor=actor))[0]

    def delete(self, resource: str, name: str, version: str | None = None,
               actor: str = "kubectl") -> dict[str, Any]:
        plural = self.plural(resource)
        return self.store.delete(plural, self._version(plural, version), name, opts=WriteOptions(actor=actor))

    def create_module_source(self, name: str, repo: str, *, scheme: str = "HTTP", docker_cfg: str = "",
                             ca: str = "", actor: str = "kubectl") -> dict[str, Any]:
        """A ModuleSource for a registry repo (no scheme in ``repo``; ``scheme`` HTTP for local registries)."""
        registry = {"repo": repo, "scheme": scheme, **({"dockerCfg": docker_cfg} if docker_cfg else {}),
                    **({"ca": ca} if ca else {})}
        return self.create("modulesources", {"metadata": {"name": name}, "spec": {"registry": registry}},
                           actor=actor)

    def create_mpo(self, name: str, image_tag: str, *, source: str | None = None, scan_interval: str | None = None,
                   version: str | None = None, actor: str = "kubectl", **spec: Any) -> dict[str, Any]:
        """An MPO as ``kubectl create`` would make it; v1alpha1 when ``source`` is given and served."""
        if version is None:
            served = self.served_versions("modulepulloverrides")
            version = "v1alpha1" if source and "v1alpha1" in served else served[0]
        body_spec = {"imageTag": image_tag, **({"source": source} if source else {}),
                     **({"scanInterval": scan_interval} if scan_interval else {}), **spec}
        return self.create("modulepulloverrides", {"metadata": {"name": name}, "spec": body_spec}, version, actor)

    # ----- assertions

    def writes(self, actor: str | None = None, resource: str | None = None,
               include_noop: bool = True) -> list[WriteRecord]:
        """Accepted writes in order; ``actor`` is ``http`` for everything that came over the wire."""
        plural = self.plural(resource) if resource else None
        with self.store.lock:
            return [w for w in self.store.writes if (actor is None or w.actor == actor)
                    and (plural is None or w.resource == plural) and (include_noop or not w.noop)]

    def validation_errors(self, resource: str, body: dict[str, Any], version: str) -> list[dict[str, str]]:
        """Schema causes ``body`` would get at ``version`` (empty list: valid), without writing anything."""
        rd = self.store.resources[self.plural(resource)]
        obj = {k: v for k, v in body.items() if k != "status"}
        schema.default(obj, rd.schemas[version])
        return schema.validate(obj, rd.validator(version))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every change); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self.store.changed:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self.store.changed.wait(timeout=min(left, 0.1))

    def compact(self) -> None:
        """Forget watch history, so a watch from an older resourceVersion gets 410 Expired."""
        with self.store.lock:
            self.store.compacted_rv = self.store.rv
            self.store.events.clear()
