"""The simulated Deckhouse's Module manager (tests/kube/modules.py) against the emulator and a real registry:
reconcile then Ready on each new digest, HookError and Deploy error for marked images, the gate of a disabled
module; Modules in v1alpha1 and v1beta1, validated against Deckhouse's schemas."""

from __future__ import annotations

import pytest

from tests.kube.modules import DEPLOY_ERROR_MARK, HASH_ANNOTATION, HOOK_ERROR, HOOK_ERROR_MARK

BOTH = pytest.mark.parametrize("kube_emulator", [{"module_versions": ["v1alpha1"]}, {"module_versions": ["v1beta1"]}],
                               indirect=True, ids=["v1alpha1", "v1beta1"])


def state(module: dict) -> str:
    status = module.get("status") or {}
    return status.get("phase") or (status.get("summary") or {}).get("state", "")


def setup(emu, registry, content: bytes, **controller_options):
    repo = f"{registry.host}/{registry.unique('src')}/modules"
    digest = registry.push("echo", "main", content, repo=repo)
    registry.publish_module("echo", repo=repo)
    emu.create_module_source("example", repo)
    emu.create_mpo("echo", "main", source="example", scan_interval="1s")
    return repo, digest


@BOTH
def test_reconciling_then_ready_on_each_new_digest(kube_emulator, deckhouse_controller_factory, registry):
    emu = kube_emulator
    controller = deckhouse_controller_factory(emu, module_ready_after=0.5)
    repo, first = setup(emu, registry, b"build one")
    seen = emu.wait_for(lambda: (m := emu.get("modules", "echo")) and state(m) in ("Reconciling", "Updating") and m)
    assert seen["apiVersion"].endswith(emu.served_versions("modules")[0])
    ready = emu.wait_for(lambda: (m := emu.get("modules", "echo")) and state(m) == "Ready" and m)
    conditions = {c["type"]: c for c in ready["status"]["conditions"]}
    assert conditions["IsReady" if "IsReady" in conditions else "Ready"]["status"] == "True"
    if emu.served_versions("modules") == ("v1beta1",):
        assert ready["metadata"]["annotations"][HASH_ANNOTATION] == first

    second = registry.push("echo", "main", b"build two", repo=repo)
    emu.wait_for(lambda: (emu.get("mpo", "echo") or {}).get("status", {}).get("imageDigest") == second)
    emu.wait_for(lambda: state(emu.get("modules", "echo")) in ("Reconciling", "Updating"))
    emu.wait_for(lambda: state(emu.get("modules", "echo")) == "Ready")
    assert not controller.errors


@BOTH
def test_an_image_marked_broken_fails_its_hooks(kube_emulator, deckhouse_controller, registry):
    emu = kube_emulator
    _, digest = setup(emu, registry, HOOK_ERROR_MARK + b" build")
    failed = emu.wait_for(lambda: (m := emu.get("modules", "echo")) and state(m) in ("Error", "Failed") and m)
    assert emu.get("mpo", "echo")["status"]["imageDigest"] == digest  # Deckhouse took the image
    reasons = {c["reason"] for c in failed["status"]["conditions"]}
    assert "HookError" in reasons and HOOK_ERROR in str(failed["status"])
    assert not deckhouse_controller.errors


def test_an_image_marked_undeployable_keeps_the_old_digest(kube_emulator, deckhouse_controller, registry):
    emu = kube_emulator
    repo, first = setup(emu, registry, b"build one")
    emu.wait_for(lambda: state(emu.get("modules", "echo") or {}) == "Ready")
    registry.push("echo", "main", DEPLOY_ERROR_MARK + b" build two", repo=repo)
    mpo = emu.wait_for(lambda: (o := emu.get("mpo", "echo"))
                       and o["status"].get("message", "").startswith("Deploy error:") and o, timeout=10)
    assert mpo["status"]["imageDigest"] == first
    assert state(emu.get("modules", "echo")) == "Ready"  # the old build keeps running
    assert not deckhouse_controller.errors


@BOTH
@pytest.mark.deckhouse(disabled={"echo"})
def test_a_disabled_module_is_gated(kube_emulator, deckhouse_controller, registry):
    emu = kube_emulator
    setup(emu, registry, b"build")
    module = emu.wait_for(lambda: (m := emu.get("modules", "echo")) and state(m) in ("Downloaded", "Suspended") and m)
    assert emu.get("mpo", "echo")["status"]["message"] == "The module disabled"
    if emu.served_versions("modules") == ("v1alpha1",):
        enabled = next(c for c in module["status"]["conditions"] if c["type"] == "EnabledByModuleManager")
        assert enabled["status"] == "False"
    assert not deckhouse_controller.errors


@pytest.mark.parametrize(("version", "status"), [
    ("v1alpha1", {"phase": "Sleeping"}),
    ("v1beta1", {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "x", "message": "",
                                 "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
])
def test_module_status_is_validated_by_the_real_schema(kube_emulator_factory, version, status):
    from tests.kube.errors import ApiError

    emu = kube_emulator_factory(module_versions=[version])
    body = {"metadata": {"name": "echo"}, **({"spec": {"packageVersion": "dev"}} if version == "v1beta1" else {})}
    emu.create("modules", body)
    with pytest.raises(ApiError) as refused:
        emu.patch_status("modules", "echo", status)
    assert refused.value.code == 422
    assert emu.validation_errors("mc", {"metadata": {"name": "echo"}}, "v1alpha1")  # spec is required
