"""Rollout and drift events from the cluster: the Kubernetes API emulator and the simulated Deckhouse controller
write the MPO status and the Module, the read-back mirrors both, and each change of the rollout verdict is one event
(not one per read): success only once the Module is Ready, a hook failure behind a Ready MPO, the recovery."""

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.cluster import sync
from overrides.models import ClusterModule, NotificationEvent
from overrides.polling import checks
from tests.kube.modules import HOOK_ERROR, HOOK_ERROR_MARK

pytestmark = pytest.mark.django_db


def apply_all():
    return sync.apply_due(now=timezone.now() + timedelta(hours=1))


def kinds(override):
    return list(NotificationEvent.objects.filter(override=override).order_by("id").values_list("event_type",
                                                                                               flat=True))


def module_phase(emu, name):
    return ((emu.get("modules", name) or {}).get("status") or {}).get("phase")


@pytest.mark.deckhouse(module_ready_after=2.0)
def test_rollout_download_failure_and_drift_events(cluster_settings, deckhouse_controller, registry, actor,
                                                   make_source):
    emu = cluster_settings
    module = registry.unique("ev")
    digest = registry.push(module, "main", "build 1")
    source = make_source(name="local", repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main")
    checks.check_override(override.pk)
    apply_all()

    def status():
        return (emu.get("mpo", module) or {}).get("status") or {}

    def deploy(content):
        pushed = registry.push(module, "main", content)
        checks.check_override(override.pk)  # the portal sees the new build (else the verdict is "pending")
        services.override_renew(actor=actor, override=override)
        apply_all()
        emu.wait_for(lambda: status().get("imageDigest") == pushed, timeout=20)
        before = kinds(override)
        sync.read_back()  # the new digest reported, the Module reconciling on it: deploying, no event
        assert ClusterModule.objects.get(override=override).phase == "Reconciling" and kinds(override) == before
        return pushed

    emu.wait_for(lambda: status().get("imageDigest") == digest)
    sync.read_back()  # the MPO is Ready on the digest, the Module still reconciling: no success yet
    assert ClusterModule.objects.get(override=override).phase == "Reconciling"
    assert status().get("message") == "Ready" and kinds(override) == ["override.created", "build.detected"]
    emu.wait_for(lambda: module_phase(emu, module) == "Ready", timeout=20)
    sync.read_back()
    sync.read_back()
    assert kinds(override) == ["override.created", "build.detected", "rollout.succeeded"]
    succeeded = NotificationEvent.objects.get(override=override, event_type="rollout.succeeded")
    assert succeeded.payload["digest"] == digest and succeeded.payload["verdict"]["state"] == "running"

    # A hook fails: Deckhouse took the image (the MPO stays Ready), only the Module says Error.
    broken = deploy(HOOK_ERROR_MARK + b" build 2")
    emu.wait_for(lambda: module_phase(emu, module) == "Error", timeout=20)
    sync.read_back()
    sync.read_back()
    assert status().get("message") == "Ready"
    assert kinds(override)[-1] == "rollout.failed"
    failed = NotificationEvent.objects.get(override=override, event_type="rollout.failed")
    about = failed.payload["verdict"]
    assert failed.payload["digest"] == broken and about["state"] == "deploy-failed" and HOOK_ERROR in about["reason"]
    # The fix: the recovery is a success again, on the new digest.
    fixed = deploy(b"build 3, hooks fixed")
    emu.wait_for(lambda: module_phase(emu, module) == "Ready", timeout=20)
    sync.read_back()
    sync.read_back()
    assert kinds(override)[-1] == "rollout.succeeded"
    assert [e.payload["digest"] for e in NotificationEvent.objects.filter(
        override=override, event_type="rollout.succeeded").order_by("id")] == [digest, fixed]

    services.override_update(actor=actor, override=override, image_tag="no-such-tag")
    services.override_renew(actor=actor, override=override)  # the controller checks at once on the annotation
    apply_all()
    emu.wait_for(lambda: status().get("message", "").startswith("Download error"), timeout=20)
    sync.read_back()
    sync.read_back()
    assert kinds(override)[-2:] == ["override.changed", "download.failed"]  # once, not on every read
    failed = NotificationEvent.objects.get(override=override, event_type="download.failed")
    assert failed.payload["message"].startswith("Download error")
    rollout = [k for k in kinds(override) if k in ("rollout.succeeded", "rollout.failed", "download.failed")]
    assert rollout == ["rollout.succeeded", "rollout.failed", "rollout.succeeded", "download.failed"]

    emu.patch("mpo", module, {"spec": {"imageTag": "main"}})  # kubectl edit behind the portal's back
    sync.read_back()
    assert kinds(override)[-1] == "drift.detected"
    assert not deckhouse_controller.errors
