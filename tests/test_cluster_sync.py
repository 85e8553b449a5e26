"""Portal -> cluster over real HTTP (the API-server emulator): create, update, delete and renew round trips,
failures and backoff, conflicts, the claim of due rows. Every body the portal wrote must validate against the
CRD version it was written to, and the portal must never write status or finalizers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.cluster import sync
from overrides.models import ChangeAction, ModulePullOverride, ModuleSource, ObjectChange, SyncState
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db

MANAGED = {"app.kubernetes.io/managed-by": "mpo-portal"}


def portal_writes(emu, resource=None):
    return emu.writes(actor="http", resource=resource)


def assert_portal_writes_valid(emu):
    """Every write that came over HTTP: schema-valid for its version, never status, never finalizers."""
    writes = portal_writes(emu)
    assert writes, "the portal wrote nothing"
    for write in writes:
        assert write.subresource is None, f"the portal wrote {write.subresource} of {write.name}"
        body = write.body or {}
        if write.method == "DELETE":
            continue
        assert "status" not in body
        assert "finalizers" not in (body.get("metadata") or {})
        if write.method == "POST":
            assert emu.validation_errors(write.resource, body, write.version) == []
        assert emu.validation_errors(write.resource, write.result, write.version) == []


def apply_all():
    """Apply whatever is due, now."""
    return sync.apply_due(now=timezone.now() + timedelta(hours=1))


@pytest.mark.parametrize("kube_emulator", [{"mpo_versions": ["v1alpha1"]}, {"mpo_versions": ["v1alpha2"]}],
                         indirect=True, ids=["v1alpha1-only", "v1alpha2-only"])
def test_create_update_delete_round_trip(cluster_settings, actor, make_source, make_override):
    emu = cluster_settings
    version = emu.served_versions("mpo")[0]
    source = make_source(name="dev", repo="registry.example.com/dev/modules")
    override = make_override(name="echo", source=source, image_tag="main", scan_interval="30s")
    assert override.sync_state == SyncState.PENDING
    outcomes = apply_all()
    assert [(o.model, o.result) for o in outcomes] == [("source", "synced"), ("override", "synced")]

    cr = emu.get("mpo", "echo", version)
    assert cr["metadata"]["labels"] == MANAGED
    expected = {"imageTag": "main", "scanInterval": "30s", "rollback": False}
    assert cr["spec"] == ({"source": "dev", **expected} if version == "v1alpha1" else expected)
    assert emu.get("ms", "dev")["spec"]["registry"] == {"repo": "registry.example.com/dev/modules",
                                                       "scheme": "HTTPS"}
    override.refresh_from_db()
    assert (override.sync_state, override.applied_version) == (SyncState.SYNCED, override.spec_version)
    assert override.cluster_uid == cr["metadata"]["uid"]
    assert override.cluster_resource_version == cr["metadata"]["resourceVersion"]

    services.override_update(actor=actor, override=override, image_tag="pr-7", rollback=True)
    assert apply_all()[0].result == "synced"
    assert emu.get("mpo", "echo", version)["spec"]["imageTag"] == "pr-7"
    assert emu.get("mpo", "echo", version)["spec"]["rollback"] is True
    assert portal_writes(emu, "mpo")[-1].method == "PATCH"

    services.override_delete(actor=actor, override=override)
    assert apply_all()[0].result == "synced"
    assert emu.get("mpo", "echo") is None
    override.refresh_from_db()
    assert override.is_deleted and override.sync_state == SyncState.SYNCED
    assert apply_all() == []  # idempotent: nothing left to do
    assert sync.apply_override(override.pk).result == "unchanged"
    assert_portal_writes_valid(emu)


def test_apply_is_idempotent_and_writes_nothing_when_the_cr_matches(cluster_settings, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    before = len(portal_writes(emu))
    ModulePullOverride.all_objects.filter(pk=override.pk).update(sync_state=SyncState.PENDING)
    assert sync.apply_override(override.pk).result == "synced"
    assert len(portal_writes(emu)) == before


def test_source_credentials_are_written_and_removed(cluster_settings, actor, make_source, caplog):
    emu = cluster_settings
    cfg = make_docker_cfg("registry.example.com", "ci", "s3cret-pass")
    source = make_source(name="private", docker_cfg=cfg, release_channel="Alpha")
    apply_all()
    assert emu.get("ms", "private")["spec"]["registry"]["dockerCfg"] == cfg
    services.source_update(actor=actor, source=source, docker_cfg="", release_channel="")
    apply_all()
    spec = emu.get("ms", "private")["spec"]
    assert "dockerCfg" not in spec["registry"] and "releaseChannel" not in spec
    assert_portal_writes_valid(emu)
    source.refresh_from_db()
    assert cfg not in source.sync_message and cfg not in caplog.text
    assert not any(cfg in str(c.after) + str(c.before) for c in ObjectChange.objects.all())


def test_the_deckhouse_source_is_never_written(cluster_settings):
    emu = cluster_settings
    emu.create_module_source("deckhouse", "registry.deckhouse.io/deckhouse/ce/modules", scheme="HTTPS")
    sync.read_back()
    builtin = ModuleSource.objects.get(name="deckhouse")
    ModuleSource.all_objects.filter(pk=builtin.pk).update(sync_state=SyncState.PENDING, spec_version=5)
    assert sync.due_applies() == []
    assert sync.apply_source(builtin.pk).result == "skipped"
    assert portal_writes(emu) == []


def test_renew_writes_a_fresh_annotation_each_time_and_forces_once(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    services.override_renew(actor=actor, override=override)
    apply_all()
    first = emu.get("mpo", "echo")["metadata"]["annotations"]
    assert set(first) == {"renew"}

    services.override_renew(actor=actor, override=override, force=True)
    apply_all()
    second = emu.get("mpo", "echo")["metadata"]["annotations"]
    assert second["renew"] != first["renew"]  # a fresh value: counts as a change every time
    assert second["modules.deckhouse.io/renew"] == "true"
    override.refresh_from_db()
    assert override.renew_force is False  # forced once, with that renew

    # The controller redeploys and removes both; a later spec edit must not renew or force again.
    emu.patch("mpo", "echo", {"metadata": {"annotations": {"renew": None, "modules.deckhouse.io/renew": None}}},
              actor="controller")
    services.override_update(actor=actor, override=override, image_tag="next")
    apply_all()
    cr = emu.get("mpo", "echo")
    assert cr["spec"]["imageTag"] == "next"
    assert not cr["metadata"].get("annotations")
    assert "annotations" not in (portal_writes(emu, "mpo")[-1].body.get("metadata") or {})
    assert_portal_writes_valid(emu)


def test_controller_metadata_is_left_alone(cluster_settings, deckhouse_controller, actor, make_source, registry):
    """With a running (simulated) Deckhouse: its finalizer, annotations and status survive the portal's writes,
    and a deletion waits for the controller to release its finalizer."""
    emu = cluster_settings
    module = registry.unique("mod")
    registry.push(module, "main", "first build")
    source = make_source(name="local", repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main")
    apply_all()
    emu.wait_for(lambda: (emu.get("mpo", module) or {}).get("status", {}).get("imageDigest"))
    registry.push(module, "pr-1", "second build")
    services.override_update(actor=actor, override=override, image_tag="pr-1")
    apply_all()
    cr = emu.get("mpo", module)
    assert cr["spec"]["imageTag"] == "pr-1"
    assert cr["metadata"]["finalizers"] == ["modules.deckhouse.io/mpo-finalizer"]
    assert cr["status"]["imageDigest"]
    services.override_delete(actor=actor, override=override)
    assert apply_all()[0].result == "synced"
    emu.wait_for(lambda: emu.get("mpo", module) is None)
    assert_portal_writes_valid(emu)
    assert not deckhouse_controller.errors


def test_cluster_down_then_back_lands_only_the_latest_state(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override(image_tag="v1")
    apply_all()
    emu.set_down(True)
    services.override_update(actor=actor, override=override, image_tag="v2")
    outcome = sync.apply_override(override.pk)
    assert outcome.result == "pending"
    override.refresh_from_db()
    assert override.sync_state == SyncState.PENDING and override.sync_attempts == 1
    assert override.sync_message == f"Cluster unreachable at {emu.url}: connection refused; will retry in 2 s"
    assert timezone.now() < override.next_sync_at <= timezone.now() + timedelta(seconds=2)
    assert sync.due_applies() == []  # backing off

    services.override_update(actor=actor, override=override, image_tag="v3")
    assert apply_all()[0].result == "pending"
    emu.set_down(False)
    writes_before = len(portal_writes(emu))
    assert [o.result for o in apply_all()] == ["synced"]

    landed = portal_writes(emu)[writes_before:]
    assert [(w.method, w.body["spec"]["imageTag"]) for w in landed] == [("PATCH", "v3")]
    assert emu.get("mpo", "echo")["spec"]["imageTag"] == "v3"
    override.refresh_from_db()
    assert (override.sync_state, override.sync_attempts, override.applied_version) == (
        SyncState.SYNCED, 0, override.spec_version)
    history = ObjectChange.objects.filter(object_type="modulepulloverride", object_id=override.pk).order_by("id")
    assert [(c.action, (c.after or {}).get("imageTag")) for c in history] == [
        (ChangeAction.CREATE, "v1"), (ChangeAction.UPDATE, "v2"), (ChangeAction.UPDATE, "v3")]


def test_transient_failures_back_off_then_turn_to_error(cluster_settings, make_override):
    emu = cluster_settings
    override = make_override()
    emu.fail_next(sync.ERROR_AFTER_ATTEMPTS, status=503)  # one request per attempt: the first one fails
    delays = []
    for attempt in range(1, sync.ERROR_AFTER_ATTEMPTS + 1):
        start = timezone.now()
        outcome = sync.apply_override(override.pk)
        override.refresh_from_db()
        assert override.sync_attempts == attempt
        delays.append(round((override.next_sync_at - start).total_seconds()))
        assert "503" in override.sync_message
    assert outcome.result == "error" and override.sync_state == SyncState.ERROR
    assert delays == [2, 4, 8, 16, 32]
    assert [o.result for o in apply_all()] == ["synced", "synced"]  # error rows are retried too


@pytest.mark.parametrize("status", [403, 422])
def test_refusals_that_need_a_person_are_errors_at_once(cluster_settings, make_override, status):
    emu = cluster_settings
    override = make_override()
    emu.fail_next(1, status=status, method="POST", path_contains="modulepulloverrides")
    sync.apply_override(override.pk)
    override.refresh_from_db()
    assert override.sync_state == SyncState.ERROR and override.sync_attempts == 1
    assert str(status) in override.sync_message and "will retry in 2 s" in override.sync_message


def test_an_invalid_spec_is_refused_by_the_cluster_and_reported(cluster_settings, make_override):
    """A value the portal would never accept, forced into the row: the API server's 422 ends up in words."""
    override = make_override()
    ModulePullOverride.all_objects.filter(pk=override.pk).update(scan_interval="soon")
    sync.apply_override(override.pk)
    override.refresh_from_db()
    assert override.sync_state == SyncState.ERROR
    assert "422" in override.sync_message and "spec.scanInterval" in override.sync_message


def test_timeout_is_bounded_and_retried(cluster_settings, settings, make_override):
    emu = cluster_settings
    settings.PORTAL_CLUSTER_TIMEOUT = 0.3
    override = make_override()
    emu.delay = 1.0
    assert sync.apply_override(override.pk).result == "pending"
    override.refresh_from_db()
    assert override.sync_message.startswith(f"Cluster at {emu.url} did not answer within 0.3 s")
    emu.delay = 0
    assert sync.apply_override(override.pk).result == "synced"


def test_conflict_is_resolved_by_reading_again(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    services.override_update(actor=actor, override=override, image_tag="after-conflict")
    emu.fail_next(1, status=409, method="PATCH")
    assert sync.apply_override(override.pk).result == "synced"
    assert emu.get("mpo", "echo")["spec"]["imageTag"] == "after-conflict"
    patches = [r for r in emu.requests if r.method == "PATCH"]
    assert [r.status for r in patches] == [409, 200]


def test_a_real_stale_write_conflicts_and_is_reapplied(cluster_settings, actor, make_override, monkeypatch):
    """Someone writes the CR between the portal's read and its patch: the conditional patch gets a 409."""
    emu = cluster_settings
    override = make_override()
    apply_all()
    services.override_update(actor=actor, override=override, image_tag="mine")
    original_get = sync.cluster.get_object
    calls = []

    def get_then_race(*args):
        current = original_get(*args)
        if not calls:
            emu.patch("mpo", "echo", {"metadata": {"labels": {"team": "qa"}}})
        calls.append(1)
        return current

    monkeypatch.setattr(sync.cluster, "get_object", get_then_race)
    assert sync.apply_override(override.pk).result == "synced"
    cr = emu.get("mpo", "echo")
    assert cr["spec"]["imageTag"] == "mine" and cr["metadata"]["labels"]["team"] == "qa"
    assert len(calls) == 2


def test_a_change_during_the_apply_stays_pending(cluster_settings, actor, make_override, monkeypatch):
    emu = cluster_settings
    override = make_override(image_tag="first")
    original_create = sync.cluster.create_object

    def create_and_edit_meanwhile(*args):
        result = original_create(*args)
        if args[0] is sync.MPO:
            services.override_update(actor=actor, override=override, image_tag="second")
        return result

    monkeypatch.setattr(sync.cluster, "create_object", create_and_edit_meanwhile)
    outcomes = apply_all()
    assert outcomes[-1].result == "stale"
    override.refresh_from_db()
    assert override.sync_state == SyncState.PENDING and override.applied_version < override.spec_version
    assert [o.result for o in apply_all()] == ["synced"]
    assert emu.get("mpo", "echo")["spec"]["imageTag"] == "second"


def test_due_rows_are_claimed_once(cluster_settings, make_override):
    override = make_override()
    # The apply task enqueued after commit owns a fresh change; the sweep takes it only once that task is lost.
    assert sync.due_applies() == []
    lost = timezone.now() + services.APPLY_TASK_GRACE + timedelta(seconds=1)
    claims = sync.due_applies(now=lost)
    assert [(c.model, c.task) for c in claims] == [("source", "overrides.tasks.apply_source"),
                                                    ("override", "overrides.tasks.apply_override")]
    assert sync.due_applies(now=lost) == []  # claimed: leased to the first caller
    later = lost + sync.CLAIM_LEASE + timedelta(seconds=1)
    assert len(sync.due_applies(now=later)) == 2  # a claim whose worker died expires
    assert sync.apply_override(override.pk).result == "synced"


def test_rows_changed_while_sync_was_off_are_applied_once_a_cluster_is_configured(
        kube_emulator, settings, make_override):
    override = make_override()  # sync is off in tests unless a cluster is configured
    assert override.sync_state == SyncState.OFF
    assert sync.due_applies() == [] and sync.apply_override(override.pk).result == "off"
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", kube_emulator.kubeconfig_path
    assert [o.result for o in apply_all()] == ["synced", "synced"]
    assert kube_emulator.get("mpo", "echo") is not None


def test_an_imported_cr_edited_in_the_portal_takes_the_managed_label(cluster_settings, actor):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    sync.read_back()
    override = ModulePullOverride.objects.get(name="echo")
    assert override.managed is False
    services.override_update(actor=actor, override=override, image_tag="portal")
    apply_all()
    cr = emu.get("mpo", "echo")
    assert cr["metadata"]["labels"] == MANAGED and cr["spec"]["imageTag"] == "portal"
    override.refresh_from_db()
    assert override.managed is True
    assert "labels" not in emu.get("ms", "dev")["metadata"]  # the source was not edited: not touched
    assert_portal_writes_valid(emu)


def test_deleting_a_source_deletes_its_module_source(cluster_settings, actor, make_source):
    emu = cluster_settings
    source = make_source(name="gone", repo="registry.example.com/gone/modules")
    assert [o.result for o in apply_all()] == ["synced"]
    assert emu.get("ms", "gone") is not None
    services.source_delete(actor=actor, source=source)
    assert [o.result for o in apply_all()] == ["synced"]
    assert emu.get("ms", "gone") is None
    assert portal_writes(emu, "ms")[-1].method == "DELETE"
    source.refresh_from_db()
    assert source.is_deleted and source.sync_state == SyncState.SYNCED
