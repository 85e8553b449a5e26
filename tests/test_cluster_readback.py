"""Cluster -> portal over real HTTP: imports of kubectl-made CRs, drift taken over, deletions in the cluster,
status mirroring (both ModuleSource status shapes), digests seen by the cluster, and `manage.py import_cluster`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from overrides import services
from overrides.cluster import sync
from overrides.cluster.readback import normalize_source_modules
from overrides.models import (
    ChangeAction,
    ChangeContext,
    DigestObservation,
    DigestOrigin,
    ModulePullOverride,
    ModuleSource,
    ObjectChange,
    SyncState,
)
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db


def apply_all():
    return sync.apply_due(now=timezone.now() + timedelta(hours=1))


def changes_of(obj):
    return list(ObjectChange.objects.filter(object_type=obj._meta.model_name, object_id=obj.pk).order_by("id"))


@pytest.mark.kube(mpo_versions=["v1alpha1"])
def test_kubectl_made_crs_are_imported(cluster_settings):
    emu = cluster_settings
    cfg = make_docker_cfg("registry.example.com", "ci", "pull-secret")
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS", docker_cfg=cfg)
    emu.create_mpo("echo", "main", source="dev", scan_interval="1m")
    summary = sync.read_back()
    assert summary.ok and summary.mpo_version == "v1alpha1"
    assert summary.imported == ["ModuleSource dev", "ModulePullOverride echo"]

    source = ModuleSource.objects.get(name="dev")
    override = ModulePullOverride.objects.select_related("source").get(name="echo")
    assert (source.repo, source.scheme, source.docker_cfg) == ("registry.example.com/dev/modules", "HTTPS", cfg)
    assert (override.source, override.image_tag, override.scan_interval) == (source, "main", "1m")
    for row in (source, override):
        assert row.managed is False and row.sync_state == SyncState.SYNCED
        assert row.applied_version == row.spec_version and row.cluster_uid
        [change] = changes_of(row)
        assert (change.action, change.context, change.user_name) == (ChangeAction.IMPORT, ChangeContext.CLUSTER,
                                                                     "cluster")
    assert changes_of(source)[0].after["registry"]["dockerCfg"] == "***"
    assert sync.apply_due() == []  # nothing to write back
    assert sync.read_back().imported == []  # and nothing imported twice
    assert emu.writes(actor="http") == []


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_v1alpha2_mpo_goes_to_the_source_that_lists_its_module(cluster_settings):
    emu = cluster_settings
    for name in ("alpha", "beta"):
        emu.create_module_source(name, f"registry.example.com/{name}/modules", scheme="HTTPS")
    emu.patch_status("ms", "beta", {"modules": [{"name": "echo", "policy": "deckhouse", "overridden": True}]})
    emu.create_mpo("echo", "main")
    emu.create_mpo("orphan", "main")
    summary = sync.read_back()
    assert ModulePullOverride.objects.get(name="echo").source.name == "beta"
    assert not ModulePullOverride.all_objects.filter(name="orphan").exists()
    assert summary.skipped == ["ModulePullOverride orphan: no source lists the module, so its source is unknown "
                               "(the portal needs one)."]
    assert "Not imported: ModulePullOverride orphan" in "\n".join(summary.lines())


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_v1alpha2_mpo_goes_to_the_only_source(cluster_settings):
    emu = cluster_settings
    emu.create_module_source("deckhouse", "registry.deckhouse.io/deckhouse/ce/modules", scheme="HTTPS")
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", scan_interval="0s")
    sync.read_back()
    override = ModulePullOverride.objects.get(name="echo")
    assert override.source.name == "dev"
    # "0s" would stop Deckhouse's rescans and the portal's poller alike: stored sanely, and said so.
    assert override.scan_interval == "15s" and '"0s"' in override.sync_message
    assert ModuleSource.objects.get(name="deckhouse").is_builtin


def test_drift_in_the_cluster_is_taken_over(cluster_settings, make_override):
    emu = cluster_settings
    override = make_override(image_tag="main")
    apply_all()
    emu.patch("mpo", "echo", {"spec": {"imageTag": "hotfix", "scanInterval": "5m"}})
    summary = sync.read_back()
    assert summary.taken_over == ["ModulePullOverride echo"]
    override.refresh_from_db()
    assert (override.image_tag, override.scan_interval) == ("hotfix", "5m")
    assert override.sync_state == SyncState.SYNCED and override.applied_version == override.spec_version == 2
    change = changes_of(override)[-1]
    assert (change.action, change.context, change.message) == (ChangeAction.UPDATE, ChangeContext.CLUSTER,
                                                               "changed in the cluster")
    assert (change.before["imageTag"], change.after["imageTag"]) == ("main", "hotfix")
    writes = len(emu.writes(actor="http"))
    assert sync.apply_due() == [] and sync.read_back().taken_over == []
    assert len(emu.writes(actor="http")) == writes  # the cluster's state is not written back


def test_status_only_changes_are_not_drift(cluster_settings, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    emu.patch_status("mpo", "echo", {"message": "Ready", "imageDigest": "sha256:" + "a" * 64})
    emu.patch("mpo", "echo", {"metadata": {"finalizers": ["modules.deckhouse.io/mpo-finalizer"]}},
              actor="controller")
    summary = sync.read_back()
    assert summary.taken_over == [] and summary.status_updated == 1
    override.refresh_from_db()
    assert override.spec_version == 1 and override.status_message == "Ready"
    assert override.cluster_resource_version == emu.get("mpo", "echo")["metadata"]["resourceVersion"]


def test_the_portals_pending_change_wins_over_the_cluster(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override(image_tag="main")
    apply_all()
    services.override_update(actor=actor, override=override, image_tag="portal")
    emu.patch("mpo", "echo", {"spec": {"imageTag": "kubectl"}})
    assert sync.read_back().taken_over == []
    override.refresh_from_db()
    assert override.image_tag == "portal" and override.sync_state == SyncState.PENDING
    apply_all()
    assert emu.get("mpo", "echo")["spec"]["imageTag"] == "portal"


def test_source_drift_and_credentials_taken_over_without_showing_them(cluster_settings, make_source):
    emu = cluster_settings
    source = make_source(name="dev")
    apply_all()
    cfg = make_docker_cfg("registry.example.com", "new", "pw")
    emu.patch("ms", "dev", {"spec": {"registry": {"dockerCfg": cfg}}})
    assert sync.read_back().taken_over == ["ModuleSource dev"]
    source.refresh_from_db()
    assert source.docker_cfg == cfg
    change = changes_of(source)[-1]
    assert change.context == ChangeContext.CLUSTER and cfg not in str(change.after)
    assert change.after["registry"]["dockerCfg"] == "***"


def test_deleted_in_the_cluster_is_marked_deleted_and_never_recreated(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    pending = services.override_create(actor=actor, name="fresh", source=override.source,
                                       image_tag="main")  # never applied: not "deleted in the cluster"
    emu.delete("mpo", "echo")
    summary = sync.read_back()
    assert summary.marked_deleted == ["ModulePullOverride echo"]
    override.refresh_from_db()
    assert override.is_deleted and override.sync_state == SyncState.SYNCED
    assert "deleted in the cluster" in override.sync_message
    change = changes_of(override)[-1]
    assert (change.action, change.context, change.message) == (ChangeAction.DELETE, ChangeContext.CLUSTER,
                                                               "deleted in the cluster")
    pending.refresh_from_db()
    assert not pending.is_deleted and pending.sync_state == SyncState.PENDING
    assert [o.name for o in apply_all()] == ["fresh"]
    assert emu.get("mpo", "echo") is None

    # Made again with kubectl: a new object, imported (the deleted row comes back with its history).
    emu.create_mpo("echo", "again")
    assert sync.read_back().imported == ["ModulePullOverride echo"]
    override.refresh_from_db()
    assert not override.is_deleted and override.image_tag == "again" and override.managed is False
    assert changes_of(override)[-1].action == ChangeAction.IMPORT


def test_deleted_source_in_the_cluster(cluster_settings, make_source):
    emu = cluster_settings
    source = make_source(name="dev")
    apply_all()
    emu.delete("ms", "dev")
    assert sync.read_back().marked_deleted == ["ModuleSource dev"]
    source.refresh_from_db()
    assert source.is_deleted and changes_of(source)[-1].context == ChangeContext.CLUSTER


def test_a_terminating_cr_of_a_portal_deletion_is_not_imported_again(cluster_settings, actor, make_override):
    emu = cluster_settings
    override = make_override()
    apply_all()
    emu.patch("mpo", "echo", {"metadata": {"finalizers": ["modules.deckhouse.io/mpo-finalizer"]}},
              actor="controller")
    services.override_delete(actor=actor, override=override)
    apply_all()
    assert emu.get("mpo", "echo")["metadata"]["deletionTimestamp"]  # held by the controller's finalizer
    summary = sync.read_back()
    assert summary.imported == [] and summary.marked_deleted == []
    override.refresh_from_db()
    assert override.is_deleted and len(changes_of(override)) == 2


@pytest.mark.parametrize("shape", ["old", "new"])
def test_source_status_is_normalized_from_both_shapes(cluster_settings, make_source, shape):
    emu = cluster_settings
    source = make_source(name="dev")
    apply_all()
    if shape == "old":
        status = {"modules": [{"name": "echo", "policy": "deckhouse", "overridden": True}, {"name": "ping"}],
                  "moduleErrors": [{"name": "ping", "error": "no such image"}, {"name": "gone", "error": "x"}]}
    else:
        status = {"modules": [{"name": "echo", "policy": "deckhouse", "overridden": True, "version": "v1.2.0",
                               "checksum": "abc"}, {"name": "ping", "pullError": "no such image"}]}
    emu.patch_status("ms", "dev", {**status, "modulesCount": 2, "phase": "Active", "message": "",
                                   "syncTime": "2026-11-20T10:00:00Z"})
    sync.read_back()
    source.refresh_from_db()
    by_name = {m["name"]: m for m in source.status_modules}
    assert by_name["echo"]["overridden"] is True and by_name["echo"]["policy"] == "deckhouse"
    assert by_name["ping"]["error"] == "no such image" and by_name["ping"]["overridden"] is False
    assert set(by_name["echo"]) == {"name", "policy", "overridden", "version", "checksum", "error"}
    assert (source.status_modules_count, source.status_phase) == (2, "Active")
    assert source.status_sync_time.isoformat() == "2026-11-20T10:00:00+00:00"
    if shape == "new":
        assert (by_name["echo"]["version"], by_name["echo"]["checksum"]) == ("v1.2.0", "abc")
    else:
        assert by_name["gone"]["error"] == "x"
    assert source.spec_version == 1 and changes_of(source)[-1].action == ChangeAction.CREATE  # bookkeeping only


def test_normalize_joins_every_error_field():
    modules = normalize_source_modules({"modules": [{"name": "a", "pullError": "p", "error": "e"}],
                                        "moduleErrors": [{"name": "a", "error": "old"}, "junk"]})
    assert modules == [{"name": "a", "policy": "", "overridden": False, "version": "", "checksum": "",
                        "error": "p; e; old"}]
    assert normalize_source_modules({}) == []


def test_registry_push_reaches_the_portal_through_the_cluster(
        cluster_settings, deckhouse_controller, registry, actor, make_source):
    """End to end: push -> the (simulated) controller pulls and writes status.imageDigest -> read-back ->
    a cluster-origin DigestObservation, once per change, chained by previous_digest."""
    emu = cluster_settings
    module = registry.unique("e2e")
    first = registry.push(module, "main", "build 1")
    source = make_source(name="local", repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main")
    apply_all()

    def cluster_digest():
        return ((emu.get("mpo", module) or {}).get("status") or {}).get("imageDigest")

    emu.wait_for(lambda: cluster_digest() == first)
    sync.read_back()
    sync.read_back()
    [seen] = DigestObservation.objects.filter(override=override, origin=DigestOrigin.CLUSTER)
    assert (seen.digest, seen.previous_digest) == (first, "")
    assert seen.image_ref == f"{registry.repo}/{module}:main"

    second = registry.push(module, "main", "build 2")
    services.override_renew(actor=actor, override=override)  # the controller checks at once on the annotation
    apply_all()
    emu.wait_for(lambda: cluster_digest() == second)
    summary = sync.read_back()
    assert summary.digests_recorded == [f"{module}@{second}"]
    sync.read_back()
    history = list(DigestObservation.objects.filter(override=override, origin=DigestOrigin.CLUSTER))
    assert [(o.digest, o.previous_digest) for o in history] == [(second, first), (first, "")]
    override.refresh_from_db()
    assert override.status_image_digest == second and override.status_message == "Ready"
    assert override.status_weight == 910 and override.status_updated_at is not None
    assert not deckhouse_controller.errors


def test_read_back_reports_an_unreachable_or_absent_cluster(kube_emulator, settings):
    summary = sync.read_back()
    assert not summary.ok and "off" in summary.error
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", kube_emulator.kubeconfig_path
    kube_emulator.set_down(True)
    summary = sync.read_back()
    assert not summary.ok
    assert summary.error == f"Cluster unreachable at {kube_emulator.url}: connection refused"


def test_import_cluster_command(cluster_settings, capsys):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    call_command("import_cluster")
    out = capsys.readouterr().out
    assert "Imported: ModuleSource dev, ModulePullOverride echo." in out
    assert emu.url in out
    assert emu.writes(actor="http") == []  # applies nothing

    emu.set_down(True)
    with pytest.raises(CommandError, match="connection refused"):
        call_command("import_cluster")


def test_import_cluster_command_with_sync_off(db):
    with pytest.raises(CommandError, match="Cluster sync is off"):
        call_command("import_cluster")
