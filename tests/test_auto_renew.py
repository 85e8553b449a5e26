"""Auto-renew: when the portal sees a new digest the cluster does not run yet, it renews the override once, so the
controller pulls it at once instead of at its next scan. Real registry, the API-server emulator and the simulated
Deckhouse controller (which reads the tag at once on an annotation change and keeps its own scan cycle otherwise).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.models import ChangeAction, ChangeContext, DigestObservation, ModulePullOverride, ObjectChange, SyncState
from overrides.polling import auto_renew
from overrides.polling import checks as polling
from tests.test_cluster_sync import apply_all

pytestmark = pytest.mark.django_db(transaction=True)

DIGEST_A, DIGEST_B, DIGEST_C = ("sha256:" + c * 64 for c in "abc")


def cluster_digest(emu, name: str) -> str:
    return ((emu.get("mpo", name) or {}).get("status") or {}).get("imageDigest", "")


def wait_for_cluster_digest(emu, name: str, digest: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cluster_digest(emu, name) == digest:
            return True
        time.sleep(0.05)
    return False


def auto_renews(override) -> list[ObjectChange]:
    return list(ObjectChange.objects.filter(object_id=override.pk, object_type="modulepulloverride",
                                            action=ChangeAction.RENEW, context=ChangeContext.SCHEDULER))


@pytest.fixture
def running(cluster_settings, deckhouse_controller, registry, actor):
    """An override at scanInterval 1h that the cluster runs, its status read back: the controller would not look
    at the tag again for an hour unless renewed."""
    emu = cluster_settings
    module = registry.unique("echo")
    first = registry.push(module, "main", b"build one")
    source = services.source_create(actor=actor, name="dev", repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main",
                                        scan_interval="1h")
    apply_all()
    assert wait_for_cluster_digest(emu, module, first)
    assert polling.check_override(override.pk) == "first"
    services_read_back()
    yield emu, module, ModulePullOverride.objects.get(pk=override.pk)
    assert not deckhouse_controller.errors


def services_read_back():
    from overrides.cluster import sync

    assert sync.read_back().ok


def test_a_new_build_is_pulled_at_once_and_renewed_once(running, registry):
    emu, module, override = running
    second = registry.push(module, "main", b"build two")
    assert polling.check_override(override.pk) == "changed"
    assert auto_renew.renew_due() == 1
    apply_all()
    assert wait_for_cluster_digest(emu, module, second), "the controller did not pull the renewed tag"

    (renew,) = auto_renews(override)
    assert second in renew.message and renew.user_name == "scheduler"
    observation = DigestObservation.objects.get(override=override, origin="registry", digest=second)
    assert observation.renewed_at is not None
    # Never a second renew for the same digest, and never one when the cluster already runs it.
    ModulePullOverride.objects.filter(pk=override.pk).update(auto_renew_at=timezone.now())
    assert auto_renew.renew_due() == 0
    services_read_back()
    assert polling.check_override(override.pk) == "same"
    assert auto_renew.renew_due() == 0 and len(auto_renews(override)) == 1


def test_switched_off_the_controller_keeps_its_own_scan_cycle(running, registry, actor):
    emu, module, override = running
    services.override_update(actor=actor, override=override, auto_renew=False)
    change = ObjectChange.objects.filter(object_id=override.pk, action=ChangeAction.UPDATE).latest("time")
    assert (change.before["autoRenew"], change.after["autoRenew"]) == (True, False)
    assert ModulePullOverride.objects.get(pk=override.pk).sync_state == SyncState.SYNCED  # nothing to apply
    before = cluster_digest(emu, module)
    registry.push(module, "main", b"build three")
    assert polling.check_override(override.pk) == "changed"
    assert auto_renew.renew_due() == 0
    assert not auto_renews(override)
    assert ModulePullOverride.objects.get(pk=override.pk).auto_renew_at is None
    time.sleep(1.0)  # several controller cycles: at scanInterval 1h it does not look at the tag again
    assert cluster_digest(emu, module) == before


def test_global_setting_off_renews_nothing(running, registry, settings):
    settings.PORTAL_AUTO_RENEW = False
    _, module, override = running
    registry.push(module, "main", b"build four")
    assert polling.check_override(override.pk) == "changed"
    assert auto_renew.renew_due() == 0 and not auto_renews(override)


def _marked(override, **fields):
    """Put a row in the state the read-back and a check leave it in, marked for an auto-renew."""
    now = timezone.now()
    values = {"registry_digest": DIGEST_B, "status_image_digest": DIGEST_A, "sync_state": SyncState.SYNCED,
              "cluster_seen_at": now, "auto_renew_at": now, **fields}
    ModulePullOverride.objects.filter(pk=override.pk).update(**values)


def test_floor_defers_a_second_digest_then_renews_it(cluster_settings, make_override):
    override = make_override()
    _marked(override)
    start = timezone.now()
    assert auto_renew.renew_due(start) == 1
    _marked(override, registry_digest=DIGEST_C, cluster_seen_at=start, auto_renew_at=start)
    soon = start + timedelta(seconds=1)
    assert auto_renew.renew_due(soon) == 0
    row = ModulePullOverride.objects.get(pk=override.pk)
    floor = timedelta(seconds=5)
    assert row.auto_renew_at == row.auto_renewed_at + floor  # deferred, not dropped
    ModulePullOverride.objects.filter(pk=override.pk).update(cluster_seen_at=start + floor)
    assert auto_renew.renew_due(start + floor) == 1
    assert ModulePullOverride.objects.get(pk=override.pk).auto_renewed_digest == DIGEST_C
    assert len(auto_renews(override)) == 2


@pytest.mark.parametrize("state", [
    {"sync_state": SyncState.ERROR},  # the cluster refuses or cannot be reached
    {"sync_state": SyncState.PENDING},  # an apply is on its way: it makes the controller read the tag anyway
    {"cluster_seen_at": None},
    {"status_image_digest": DIGEST_B},  # the cluster already runs it
    {"auto_renewed_digest": DIGEST_B},  # renewed for it before
    {"auto_renew": False},
], ids=["cluster-error", "apply-pending", "never-seen", "already-running", "renewed-before", "switched-off"])
def test_nothing_renewed_and_nothing_kept_for_later(cluster_settings, make_override, state):
    override = make_override()
    _marked(override, **state)
    assert auto_renew.renew_due() == 0
    assert ModulePullOverride.objects.get(pk=override.pk).auto_renew_at is None
    assert not auto_renews(override)


def test_cluster_silent_for_a_minute_counts_as_unreachable(cluster_settings, make_override):
    override = make_override()
    _marked(override, cluster_seen_at=timezone.now() - timedelta(minutes=2))
    assert auto_renew.renew_due() == 0 and not auto_renews(override)


def test_sync_off_renews_nothing(make_override):
    override = make_override()  # no cluster configured
    _marked(override)
    assert auto_renew.renew_due() == 0
    assert ModulePullOverride.objects.get(pk=override.pk).auto_renew_at is None


def test_api_switch_and_timeline(admin_client, make_override):
    override = make_override()
    response = admin_client.patch(f"/api/v1/overrides/{override.name}/", {"autoRenew": False},
                                  content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["autoRenew"] is False
    assert ModulePullOverride.objects.get(pk=override.pk).auto_renew is False
    DigestObservation.objects.create(override=override, digest=DIGEST_A, image_ref=override.image_ref,
                                     origin="registry", observed_at=timezone.now(), renewed_at=timezone.now())
    digests = admin_client.get(f"/api/v1/overrides/{override.name}/digests/").json()
    assert digests["results"][0]["renewedAt"] is not None
    page = admin_client.get(f"/overrides/{override.name}/").content.decode()
    assert "Renewed" in page
