"""The simulated Deckhouse module manager: the ``Module`` object of every overridden module.

Driven by ``DeckhouseController``: a deploy of a new digest puts the module in its reconciling phase
(v1alpha1 ``phase: Reconciling``, ``IsReady=False``; v1beta1 ``summary.state: Updating``), and after
``ready_after`` seconds in its final state: Ready, or, for an image whose content holds ``HOOK_ERROR_MARK``,
``phase: Error`` with ``IsReady=False`` reason ``HookError`` (v1beta1 ``Failed``, or ``Degraded`` once it was
Ready). A disabled module gets ``phase: Downloaded`` with ``EnabledByModuleManager=False`` (v1beta1
``Suspended``). Objects are written in the version the emulator serves (its storage version).

``advance()`` is the step the controller's cycle calls; each pending transition is one entry of
``ModuleManager.pending``, so new triggers only add entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.kube.emulator import KubeEmulator

HOOK_ERROR_MARK = b"mpo-test:hook-error"
DEPLOY_ERROR_MARK = b"mpo-test:deploy-error"
HASH_ANNOTATION = "modules.deckhouse.io/hash"
DEV_ANNOTATION = "modules.deckhouse.io/dev"
HOOK_ERROR = "ModuleRun failed: hook 'hooks/migrate.py' exited with code 1: migration 0042 refused"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, status: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if status else "False", "reason": reason or ("Ready" if status else
            "Pending"), "message": message, "lastTransitionTime": _now()}


@dataclass
class PendingTransition:
    """A module that reaches ``outcome`` (``ready`` or ``hook-error``) at monotonic time ``due``."""

    module: str
    digest: str
    outcome: str
    due: float


class ModuleManager:
    """Writes Module status beside the MPOs the controller reconciles (see the module docstring)."""

    def __init__(self, emulator: KubeEmulator, *, ready_after: float = 0.3):
        self.emu = emulator
        self.ready_after = ready_after
        self.pending: dict[str, PendingTransition] = {}
        self.ready_once: set[str] = set()

    @property
    def served(self) -> bool:
        return "modules" in self.emu.store.resources

    @property
    def version(self) -> str:
        return self.emu.store.resources["modules"].storage

    def ensure(self, name: str, source: str) -> dict[str, Any] | None:
        """The Module of an overridden module, created when missing (Deckhouse creates it from the source)."""
        if not self.served:
            return None
        current = self.emu.get("modules", name)
        if current is not None:
            return current
        body: dict[str, Any] = {"metadata": {"name": name}}
        if self.version == "v1alpha1":
            body["properties"] = {"source": source, "weight": 900, "stage": "General Availability"}
        else:
            body["metadata"]["annotations"] = {DEV_ANNOTATION: "true"}
            body["spec"] = {"packageVersion": "dev", "packageRepositoryName": source}
        return self.emu.create("modules", body, self.version, actor="controller")

    def deploying(self, name: str, source: str, digest: str, content: bytes) -> None:
        """A new digest was handed to the module manager: reconcile, then Ready or a hook error."""
        if self.ensure(name, source) is None:
            return
        if self.version != "v1alpha1":
            self.emu.patch("modules", name, {"metadata": {"annotations": {HASH_ANNOTATION: digest}}}, self.version,
                           actor="controller")
        self._write(name, "reconciling")
        outcome = "hook-error" if HOOK_ERROR_MARK in content else "ready"
        self.pending[name] = PendingTransition(name, digest, outcome, time.monotonic() + self.ready_after)

    def disabled(self, name: str, source: str) -> None:
        """The module is turned off (ModuleConfig ``enabled: false``): no reconcile, the gate is shown."""
        if self.ensure(name, source) is None:
            return
        self.pending.pop(name, None)
        current = (self.emu.get("modules", name) or {}).get("status") or {}
        if current.get("phase") != "Downloaded" and (current.get("summary") or {}).get("state") != "Suspended":
            self._write(name, "disabled")

    def advance(self) -> None:
        """Move every module whose reconcile time is up to its final state."""
        now = time.monotonic()
        for name, step in list(self.pending.items()):
            if step.due <= now:
                del self.pending[name]
                if self.emu.get("modules", name) is not None:
                    self._write(name, step.outcome)

    def _write(self, name: str, stage: str) -> None:
        status = self._status_v1alpha1(stage) if self.version == "v1alpha1" else self._status_v1beta1(name, stage)
        self.emu.patch_status("modules", name, status, self.version)
        if stage == "ready":
            self.ready_once.add(name)

    @staticmethod
    def _status_v1alpha1(stage: str) -> dict[str, Any]:
        enabled = _condition("EnabledByModuleManager", stage != "disabled", "ModuleConfig" if stage == "disabled"
                             else "Enabled", "disabled by ModuleConfig" if stage == "disabled" else "")
        overridden = _condition("IsOverridden", True, "ModulePullOverride", "the module is overridden")
        if stage == "reconciling":
            return {"phase": "Reconciling", "hooksState": "",
                    "conditions": [enabled, _condition("IsReady", False, "Reconciling", "module is reconciling"),
                                   overridden]}
        if stage == "ready":
            return {"phase": "Ready", "hooksState": "all hooks OK",
                    "conditions": [enabled, _condition("IsReady", True), overridden]}
        if stage == "hook-error":
            return {"phase": "Error", "hooksState": "migrate.py: failed",
                    "conditions": [enabled, _condition("IsReady", False, "HookError", HOOK_ERROR), overridden]}
        return {"phase": "Downloaded", "hooksState": "",
                "conditions": [enabled, _condition("IsReady", False, "Disabled", "the module is disabled"),
                               overridden]}

    def _status_v1beta1(self, name: str, stage: str) -> dict[str, Any]:
        if stage == "reconciling":
            summary = {"state": "Updating", "message": "installing the new version", "tip": ""}
            conditions = [_condition("Installed", False, "Installing"), _condition("Ready", False, "Installing")]
        elif stage == "ready":
            summary = {"state": "Ready", "message": "", "tip": ""}
            conditions = [_condition("Installed", True, "Installed"), _condition("Ready", True)]
        elif stage == "hook-error":
            state = "Degraded" if name in self.ready_once else "Failed"
            summary = {"state": state, "message": HOOK_ERROR, "tip": "Fix the hook and push a new image."}
            conditions = [_condition("Installed", False, "HookError", HOOK_ERROR),
                          _condition("Ready", False, "HookError", HOOK_ERROR)]
        else:
            summary = {"state": "Suspended", "message": "disabled by ModuleConfig", "tip": "Enable the module."}
            conditions = [_condition("Installed", False, "Disabled"), _condition("Ready", False, "Disabled")]
        return {"summary": summary, "conditions": conditions}
