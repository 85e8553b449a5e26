"""A simulated Deckhouse module controller for ModulePullOverrides and ModuleSources.

It behaves as ``shared/spec/deckhouse-mpo.md`` describes, against a ``KubeEmulator``'s state
(in-process, through the same code paths as HTTP writes, logged with actor ``controller``)
and a real OCI registry::

    controller = DeckhouseController(emu, interval=0.2)
    controller.start()          # background thread; or call controller.cycle() yourself
    ...
    controller.stop()

Per MPO: finds its ModuleSource (``spec.source`` when the object has one, else ``source_map``
or the first ModuleSource by name), HEADs ``<repo>/<name>:<imageTag>`` every ``scanInterval``
and at once on any annotation change, "deploys" when the digest differs or
``modules.deckhouse.io/renew: "true"`` forces it, and writes ``status`` through the status
subresource. Per ModuleSource: lists the repo's tags as modules and writes ``status``.
Per overridden module: its ``Module`` object (``tests.kube.modules``): reconciling, then Ready after
``module_ready_after`` seconds on each new digest; ``phase: Error`` / ``HookError`` for an image whose content
holds ``HOOK_ERROR_MARK``. An image holding ``DEPLOY_ERROR_MARK`` fails its deploy: ``Deploy error: ...`` on the
MPO, which keeps the old ``imageDigest``.

The cycle is a list of steps (``cycle_steps``): a new kind of trigger is one more step.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.kube.errors import ApiError
from tests.kube.modules import DEPLOY_ERROR_MARK, ModuleManager
from tests.kube.oci import RegistryAccess, RegistryError

if TYPE_CHECKING:
    from tests.kube.emulator import KubeEmulator

log = logging.getLogger(__name__)

FINALIZER = "modules.deckhouse.io/mpo-finalizer"
DEPLOYED_ON = "modules.deckhouse.io/deployed-on"
RENEW = "renew"
FORCE_RENEW = "modules.deckhouse.io/renew"
# Annotations the controller writes itself: changing them is not a user's "renew".
OWN_ANNOTATIONS = frozenset({DEPLOYED_ON})
MAX_MODULES = 1500


def parse_scan_interval(text: str) -> float | None:
    """Seconds of a ``scanInterval`` (``15s``, ``1m30s``, ``2h``); None when unparsable (like ``""``)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text or "")
    if not text or not match:
        return None
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Deployment:
    """One simulated download + install + Deckhouse restart (or a rollback on MPO deletion)."""

    module: str
    digest: str
    forced: bool = False
    rollback: bool = False
    time: float = field(default_factory=time.time)


@dataclass
class _MpoState:
    uid: str
    next_check: float = 0.0
    seen_annotations: dict[str, str] | None = None


class DeckhouseController:
    """Reconciles every MPO and ModuleSource of an emulator; see the module docstring.

    Options: ``interval`` (seconds between background cycles), ``source_map`` (module -> ModuleSource
    for objects without ``spec.source``), ``status_shape`` (``"new"``: modules[] with version/checksum/
    pullError; ``"old"``: the seed era's modules[] plus ``moduleErrors[]``), ``weight``, ``ready_message``
    (``"Ready"``; ``""`` in the seed era), ``source_interval`` (ModuleSource resync period; a change of
    the MPO set resyncs at once), ``embedded``/``disabled`` (modules answering with those messages),
    ``require_module_tag`` (MPOs of modules not among the source's tags get ``The module not found``),
    ``module_ready_after`` (seconds a Module reconciles before it is Ready or fails).
    """

    def __init__(self, emulator: KubeEmulator, *, interval: float = 0.2, source_map: dict[str, str] | None = None,
                 status_shape: str = "new", weight: int = 910, ready_message: str = "Ready",
                 node_name: str = "master-0", source_interval: float = 180.0, http_timeout: float = 2.0,
                 policies: dict[str, str] | None = None, module_versions: dict[str, str] | None = None,
                 embedded: set[str] | None = None, disabled: set[str] | None = None,
                 require_module_tag: bool = False, module_ready_after: float = 0.3):
        if status_shape not in ("new", "old"):
            raise ValueError("status_shape is 'new' or 'old'")
        self.emu = emulator
        self.interval = interval
        self.source_map = dict(source_map or {})
        self.status_shape = status_shape
        self.weight = weight
        self.ready_message = ready_message
        self.node_name = node_name
        self.source_interval = source_interval
        self.http_timeout = http_timeout
        self.policies = dict(policies or {})
        self.module_versions = dict(module_versions or {})
        self.embedded = set(embedded or ())
        self.disabled = set(disabled or ())
        self.require_module_tag = require_module_tag
        self.modules = ModuleManager(emulator, ready_after=module_ready_after)
        self.deployments: list[Deployment] = []
        self.errors: list[str] = []  # unexpected exceptions of background cycles: a test should see none
        self.cycles = 0
        self._mpo: dict[str, _MpoState] = {}
        self._source_synced: dict[str, tuple[float, int, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    def start(self) -> DeckhouseController:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="deckhouse-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> DeckhouseController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.cycle()
            except Exception:  # noqa: BLE001 - a test asserts on self.errors instead of losing the thread
                self.errors.append(traceback.format_exc())
                log.exception("controller cycle failed")
            self._stop.wait(self.interval)

    def cycle(self) -> None:
        """One reconcile pass: every step of ``cycle_steps`` in order."""
        with self._lock:
            for step in self.cycle_steps():
                step()
            self.cycles += 1

    def cycle_steps(self) -> list[Any]:
        """What one cycle does: MPOs, then Modules whose reconcile is due, then ModuleSources."""
        return [self._reconcile_mpos, self.modules.advance, self._reconcile_sources]

    def _reconcile_mpos(self) -> None:
        for mpo in self.emu.objects("modulepulloverrides"):
            try:
                self._reconcile_mpo(mpo)
            except ApiError as exc:
                if exc.code not in (404, 409):  # raced with a user's write: try again next cycle
                    raise

    def _reconcile_sources(self) -> None:
        mpo_names = frozenset(o["metadata"]["name"] for o in self.emu.objects("modulepulloverrides"))
        for source in self.emu.objects("modulesources"):
            try:
                self._reconcile_source(source, mpo_names)
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    # ----- ModulePullOverride

    def _reconcile_mpo(self, mpo: dict[str, Any]) -> None:
        meta, name = mpo["metadata"], mpo["metadata"]["name"]
        if meta.get("deletionTimestamp"):
            self._finalize(mpo)
            return
        state = self._mpo.get(name)
        if state is None or state.uid != meta["uid"]:
            state = self._mpo[name] = _MpoState(uid=meta["uid"])
        if FINALIZER not in (meta.get("finalizers") or []):
            self.emu.patch("mpo", name, {"metadata": {
                "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
                "resourceVersion": meta["resourceVersion"]}}, actor="controller")
            mpo = self.emu.get("mpo", name)  # storage form: keeps spec.source, unlike the patch answer
            if mpo is None:
                return
            meta = mpo["metadata"]
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in OWN_ANNOTATIONS}
        if annotations == state.seen_annotations and time.monotonic() < state.next_check:
            return
        period = parse_scan_interval(mpo["spec"].get("scanInterval", "15s"))
        # 0s (and an unparsable interval) means no periodic rescans; annotation changes still trigger one.
        state.next_check = time.monotonic() + period if period else float("inf")
        state.seen_annotations = annotations
        self._check(mpo, state)

    def _check(self, mpo: dict[str, Any], state: _MpoState) -> None:
        name, spec = mpo["metadata"]["name"], mpo["spec"]
        status = mpo.get("status") or {}
        source, message = self._source_of(mpo)
        if name in self.embedded:
            message = "The module is embedded"
        elif name in self.disabled:
            message = "The module disabled"
        if source is not None and name in self.disabled:
            self.modules.disabled(name, source["metadata"]["name"])
        if source is None or message:
            self._write_status(mpo, {"message": message}, unchanged_ok=True)
            return
        access = RegistryAccess.from_source(source, self.http_timeout)
        try:
            if self.require_module_tag and name not in access.tags():
                self._write_status(mpo, {"message": "The module not found"}, unchanged_ok=True)
                return
            digest = access.manifest_digest(name, spec["imageTag"])
        except RegistryError as exc:
            self._write_status(mpo, {"message": f"Download error: {exc}"}, unchanged_ok=True)
            return
        annotations = mpo["metadata"].get("annotations") or {}
        forced = annotations.get(FORCE_RENEW) == "true"
        if digest == status.get("imageDigest") and not forced:
            # Same digest: nothing is pulled; only a stale message (e.g. an old error) is corrected.
            self._write_status(mpo, {"message": self.ready_message, "weight": self.weight}, unchanged_ok=True)
            return
        try:
            content = access.image_content(name, spec["imageTag"])
        except RegistryError as exc:
            self._write_status(mpo, {"message": f"Download error: {exc}"}, unchanged_ok=True)
            return
        if DEPLOY_ERROR_MARK in content:  # the old build keeps running; imageDigest stays where it was
            self._write_status(mpo, {"message": f"Deploy error: install {name} ({digest}): helm upgrade failed: "
                                                "rendered manifests contain a resource that already exists"},
                               unchanged_ok=True)
            return
        self.deployments.append(Deployment(name, digest, forced=forced))
        written = self._write_status(mpo, {"imageDigest": digest, "message": self.ready_message,
                                           "weight": self.weight})
        drop = {key: None for key in (RENEW, FORCE_RENEW) if key in annotations and (key == RENEW or forced)}
        patch = {"metadata": {"annotations": {**drop, DEPLOYED_ON: self.node_name},
                              "resourceVersion": written["metadata"]["resourceVersion"]}}
        updated = self.emu.patch("mpo", name, patch, actor="controller")
        state.seen_annotations = {k: v for k, v in (updated["metadata"].get("annotations") or {}).items()
                                  if k not in OWN_ANNOTATIONS}
        self.modules.deploying(name, source["metadata"]["name"], digest, content)

    def _source_of(self, mpo: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The MPO's ModuleSource and, when none, the message the controller of that era writes."""
        name = mpo["metadata"]["name"]
        if mpo["spec"].get("source"):  # v1alpha1 era: the MPO names its source
            source = self.emu.get("ms", mpo["spec"]["source"])
            return source, "" if source else f'ModuleSource "{mpo["spec"]["source"]}" not found'
        if name in self.source_map:
            source = self.emu.get("ms", self.source_map[name])
            return source, "" if source else "The source not found"
        sources = self.emu.objects("ms")
        return (sources[0], "") if sources else (None, "The source not found")

    def _write_status(self, mpo: dict[str, Any], fields: dict[str, Any], unchanged_ok: bool = False) -> dict[str, Any]:
        """Patch status; ``updatedAt`` moves on every write. With ``unchanged_ok`` equal fields skip the write."""
        current = mpo.get("status") or {}
        if unchanged_ok and all(current.get(k) == v for k, v in fields.items()):
            return mpo
        return self.emu.patch_status("mpo", mpo["metadata"]["name"], {**fields, "updatedAt": _now()})

    def _finalize(self, mpo: dict[str, Any]) -> None:
        """MPO deleted: the module keeps the developer build (or rolls back), then the finalizer goes."""
        meta = mpo["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        if mpo["spec"].get("rollback"):
            self.deployments.append(Deployment(meta["name"], "", rollback=True))
        self.emu.patch("mpo", meta["name"], {"metadata": {
            "finalizers": [f for f in finalizers if f != FINALIZER],
            "resourceVersion": meta["resourceVersion"]}}, actor="controller")
        self._mpo.pop(meta["name"], None)

    # ----- ModuleSource

    def _reconcile_source(self, source: dict[str, Any], mpo_names: frozenset[str]) -> None:
        meta = source["metadata"]
        if meta.get("deletionTimestamp"):
            if (source.get("status") or {}).get("phase") != "Terminating":
                self.emu.patch_status("ms", meta["name"], {"phase": "Terminating"}, actor="controller")
            return
        last = self._source_synced.get(meta["name"])
        now = time.monotonic()
        if last and last[1] == meta.get("generation") and last[2] == mpo_names and now - last[0] < self.source_interval:
            return
        self._source_synced[meta["name"]] = (now, meta.get("generation", 1), mpo_names)
        access = RegistryAccess.from_source(source, self.http_timeout)
        status: dict[str, Any] = {"phase": "Active", "message": ""}
        try:
            names = [t for t in access.tags() if t != "modules" and len(t) <= 64][:MAX_MODULES]
        except RegistryError as exc:
            status["message"] = str(exc)
            names = None
        if names is not None:
            modules, errors = [], []
            for module in sorted(names):
                entry: dict[str, Any] = {"name": module, "policy": self.policies.get(module, "deckhouse")}
                if module in mpo_names:
                    entry["overridden"] = True  # omitempty in Deckhouse: absent when false
                try:
                    checksum = access.manifest_digest(None, module)
                except RegistryError as exc:
                    checksum, error = "", str(exc)
                    errors.append({"name": module, "error": error})
                    if self.status_shape == "new":
                        entry["pullError"] = error
                if self.status_shape == "new" and checksum:
                    entry.update({"version": self.module_versions.get(module, "v1.0.0"), "checksum": checksum})
                modules.append(entry)
            status.update({"modules": modules, "modulesCount": len(modules)})
            if self.status_shape == "old":
                status["moduleErrors"] = errors or None
        current = source.get("status") or {}
        if last and {k: v for k, v in status.items() if v is not None} == {
                k: v for k, v in current.items() if k != "syncTime"} and now - last[0] < self.source_interval:
            return
        self.emu.patch_status("ms", meta["name"], {**status, "syncTime": _now()}, actor="controller")
