"""Rollout and drift events from the cluster: the Kubernetes API emulator and the simulated Deckhouse controller
write the MPO status, the read-back mirrors it, and each change of outcome is one event (not one per read)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.cluster import sync
from overrides.models import NotificationEvent
from overrides.polling import checks

pytestmark = pytest.mark.django_db


def apply_all():
    return sync.apply_due(now=timezone.now() + timedelta(hours=1))


def kinds(override):
    return list(NotificationEvent.objects.filter(override=override).order_by("id").values_list("event_type",
                                                                                               flat=True))


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

    emu.wait_for(lambda: status().get("imageDigest") == digest)
    sync.read_back()
    sync.read_back()
    assert kinds(override) == ["override.created", "build.detected", "rollout.succeeded"]
    succeeded = NotificationEvent.objects.get(override=override, event_type="rollout.succeeded")
    assert succeeded.payload["digest"] == digest

    services.override_update(actor=actor, override=override, image_tag="no-such-tag")
    services.override_renew(actor=actor, override=override)  # the controller checks at once on the annotation
    apply_all()
    emu.wait_for(lambda: status().get("message", "").startswith("Download error"), timeout=20)
    sync.read_back()
    sync.read_back()
    assert kinds(override)[-2:] == ["override.changed", "download.failed"]  # once, not on every read
    failed = NotificationEvent.objects.get(override=override, event_type="download.failed")
    assert failed.payload["message"].startswith("Download error")

    emu.patch("mpo", module, {"spec": {"imageTag": "main"}})  # kubectl edit behind the portal's back
    sync.read_back()
    assert kinds(override)[-1] == "drift.detected"
    assert not deckhouse_controller.errors
