"""overrides.cluster: CR bodies against the real CRD schemas, discovery of served versions, the client cache."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.utils import timezone

from overrides.cluster import client as cluster
from overrides.cluster import sync
from overrides.cluster.client import ClusterError
from overrides.models import ModulePullOverride, ModuleSource
from tests.kube.schema import crd_dir, to_json_schema
from tests.registries import make_docker_cfg


def crd_validator(filename: str, version: str) -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((Path(crd_dir()) / filename).read_text())
    schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
    return jsonschema.Draft4Validator(to_json_schema(schema))


def body_errors(body: dict, filename: str, version: str) -> list[str]:
    spec_only = {k: v for k, v in body.items() if k != "metadata"}
    return [e.message for e in crd_validator(filename, version).iter_errors(spec_only)]


def unsaved_override(**kw) -> ModulePullOverride:
    source = ModuleSource(name="dev", repo="registry.example.com/dev/modules")
    values = {"name": "echo", "image_tag": "main", "scan_interval": "1m30s", "rollback": True, **kw}
    return ModulePullOverride(source=source, **values)


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2"])
def test_override_body_validates_against_its_crd_version(version):
    override = unsaved_override(renew_requested_at=timezone.now(), renew_force=True)
    body = cluster.override_body(override, version)
    assert body_errors(body, "module-pull-override.yaml", version) == []
    assert body["apiVersion"] == f"deckhouse.io/{version}"
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "mpo-portal"}
    assert body["metadata"]["annotations"] == {"renew": override.renew_requested_at.isoformat(),
                                               "modules.deckhouse.io/renew": "true"}
    assert body["spec"]["imageTag"] == "main" and body["spec"]["scanInterval"] == "1m30s"
    assert body["spec"]["rollback"] is True
    # v1alpha1 names the source (required there); v1alpha2 has no such field.
    assert ("source" in body["spec"]) == (version == "v1alpha1")


def test_v1alpha2_body_is_invalid_as_v1alpha1_and_back():
    """The schemas really differ: writing the wrong version's body would be refused."""
    v2 = cluster.override_body(unsaved_override(), "v1alpha2")
    assert body_errors(v2, "module-pull-override.yaml", "v1alpha1")  # spec.source is required in v1alpha1


def test_override_body_without_renew_has_no_annotations():
    body = cluster.override_body(unsaved_override(renew_requested_at=timezone.now()), "v1alpha2", renew=False)
    assert "annotations" not in body["metadata"]


def test_source_body_validates_and_leaves_out_empty_fields():
    cfg = make_docker_cfg("registry.example.com", "ci", "s3cret")
    full = ModuleSource(name="dev", repo="registry.example.com/dev/modules", scheme="HTTP", docker_cfg=cfg,
                        ca="-----BEGIN CERTIFICATE-----\n...", release_channel="Alpha")
    body = cluster.source_body(full)
    assert body_errors(body, "module-source.yaml", "v1alpha1") == []
    assert body["spec"] == {"registry": {"repo": "registry.example.com/dev/modules", "scheme": "HTTP",
                                         "dockerCfg": cfg, "ca": full.ca}, "releaseChannel": "Alpha"}
    bare = cluster.source_body(ModuleSource(name="dev", repo="registry.example.com/dev/modules"))
    assert bare["spec"] == {"registry": {"repo": "registry.example.com/dev/modules", "scheme": "HTTPS"}}
    assert body_errors(bare, "module-source.yaml", "v1alpha1") == []


def test_merge_patch_only_removes_what_the_portal_owns():
    current = {"spec": {"registry": {"repo": "a", "dockerCfg": "x", "future": 1}, "releaseChannel": "Alpha"},
               "metadata": {"labels": {"module": "echo"}}}
    desired = {"spec": {"registry": {"repo": "b"}}, "metadata": {"labels": {"app.kubernetes.io/managed-by": "p"}}}
    patch = cluster.merge_patch_for(desired, current, ("spec.registry.dockerCfg", "spec.releaseChannel"))
    assert patch == {"spec": {"registry": {"repo": "b", "dockerCfg": None}, "releaseChannel": None},
                     "metadata": {"labels": {"app.kubernetes.io/managed-by": "p"}}}
    assert cluster.merge_patch_for({"spec": {"a": 1}}, {"spec": {"a": 1, "b": 2}}) == {}


@pytest.mark.parametrize(("served", "expected"), [
    (["v1alpha1"], "v1alpha1"),             # Deckhouse 1.56-1.66
    (["v1alpha1", "v1alpha2"], "v1alpha1"),  # 1.67-1.75: the seed's version while it is served
    (["v1alpha2"], "v1alpha2"),             # 1.76+
])
def test_mpo_version_is_discovered(kube_emulator_factory, settings, served, expected):
    emu = kube_emulator_factory(mpo_versions=served)
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", emu.kubeconfig_path
    assert cluster.mpo_version() == expected
    discovery = [r.path for r in emu.requests if r.path.startswith("/apis")]
    assert "/apis/deckhouse.io" in discovery
    cluster.mpo_version()
    assert len([r for r in emu.requests if r.path.startswith("/apis")]) == len(discovery)  # cached


def test_pinned_version_skips_discovery(cluster_settings, settings):
    settings.PORTAL_MPO_API_VERSION = "v1alpha2"
    assert cluster.mpo_version() == "v1alpha2"
    assert cluster_settings.requests == []


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_a_version_no_longer_served_is_rediscovered(cluster_settings, make_override):
    """After an upgrade drops v1alpha1, the cached choice gets a 404; the apply discovers again and succeeds."""
    emu = cluster_settings
    cluster.mpo_version()
    cluster._discovery[(*cluster._config_key(), "modulepulloverrides")] = (float("inf"), "v1alpha1")  # as cached
    # before the upgrade
    override = make_override()
    outcome = sync.apply_override(override.pk)
    assert outcome.result == "synced", outcome.message
    assert emu.get("mpo", "echo", "v1alpha2")["spec"]["imageTag"] == "main"
    assert any(r.status == 404 and "/v1alpha1/" in r.path for r in emu.requests)


def test_client_follows_the_settings(kube_emulator_factory, settings):
    first, second = kube_emulator_factory(), kube_emulator_factory()
    settings.PORTAL_CLUSTER = "on"
    settings.PORTAL_KUBECONFIG = first.kubeconfig_path
    assert cluster.api_server() == first.url
    cluster.list_objects(cluster.MS, "v1alpha1")
    settings.PORTAL_KUBECONFIG = second.kubeconfig_path
    assert cluster.api_server() == second.url
    cluster.list_objects(cluster.MS, "v1alpha1")
    assert len(first.requests) == 1 and len(second.requests) == 1
    settings.PORTAL_CLUSTER = "off"
    with pytest.raises(ClusterError) as off:
        cluster.api_client()
    assert off.value.kind == "off"


def test_broken_kubeconfig_is_a_clear_error(settings, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [}")
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", str(path)
    with pytest.raises(ClusterError) as err:
        cluster.api_client()
    assert err.value.kind == "config" and not err.value.transient
    assert str(path) in err.value.message


def test_errors_are_classified_and_redacted(cluster_settings):
    emu = cluster_settings
    emu.fail_next(1, status=403)
    with pytest.raises(ClusterError) as forbidden:
        cluster.list_objects(cluster.MS, "v1alpha1")
    assert forbidden.value.kind == "forbidden" and not forbidden.value.transient
    emu.fail_next(1, status=503)
    with pytest.raises(ClusterError) as unavailable:
        cluster.list_objects(cluster.MS, "v1alpha1")
    assert unavailable.value.kind == "server" and unavailable.value.transient
    assert "503" in unavailable.value.message
    secret = base64.b64encode(json.dumps({"auths": {}}).encode()).decode()
    assert secret not in ClusterError("invalid", f"bad value {secret}").redacted([secret]).message


def test_backoff_doubles_from_two_seconds_up_to_five_minutes():
    assert [sync.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert sync.backoff(30) == timedelta(minutes=5)
