"""The kube-apiserver emulator and the simulated Deckhouse, driven by the official ``kubernetes`` client.

These prove the emulator answers like a real API server where the portal depends on it
(201 on create, resourceVersion and 409, status subresource, discovery, 404 for an unserved
version, 422 from the CRD schema, finalizers, selectors), and that the simulated controller
writes what Deckhouse writes, against a real registry.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.kube.controller import DeckhouseController, parse_scan_interval
from tests.kube.emulator import KubeEmulator

GROUP = "deckhouse.io"
MPO = "modulepulloverrides"
MS = "modulesources"


def mpo_body(name: str, version: str = "v1alpha1", **spec: Any) -> dict[str, Any]:
    spec = {"imageTag": "main", **({"source": "example"} if version == "v1alpha1" else {}), **spec}
    return {"apiVersion": f"{GROUP}/{version}", "kind": "ModulePullOverride", "metadata": {"name": name},
            "spec": {k: v for k, v in spec.items() if v is not None}}


@pytest.fixture
def api(kube_api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api_client)


def status_of(exc: ApiException) -> dict[str, Any]:
    import json

    return json.loads(exc.body)


# ----- CRUD


def test_create_answers_201_and_the_client_returns_the_object(api, kube_emulator):
    data, code, _ = api.create_cluster_custom_object_with_http_info(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    assert code == 201
    assert data["metadata"]["name"] == "echo"
    for key in ("uid", "creationTimestamp", "resourceVersion"):
        assert data["metadata"][key]
    assert data["metadata"]["generation"] == 1
    assert data["spec"]["scanInterval"] == "15s" and data["spec"]["rollback"] is False  # CRD defaults

    obj = api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("other"))
    assert obj is not None and obj["metadata"]["name"] == "other"  # the plain call returns the body on 201
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    assert exc.value.status == 409 and status_of(exc.value)["reason"] == "AlreadyExists"


def test_resource_version_on_every_object_and_every_write(api, kube_emulator):
    first = api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("a"))
    second = api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("b"))
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    listing = api.list_cluster_custom_object(GROUP, "v1alpha2", MPO)
    assert listing["kind"] == "ModulePullOverrideList" and listing["apiVersion"] == f"{GROUP}/v1alpha2"
    assert listing["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    assert [i["metadata"]["resourceVersion"] for i in listing["items"]] == [
        first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"]]
    assert all(i["apiVersion"] == f"{GROUP}/v1alpha2" and i["kind"] == "ModulePullOverride" for i in listing["items"])

    patched = api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "a", {"spec": {"imageTag": "next"}})
    assert int(patched["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])
    assert patched["metadata"]["generation"] == 2
    same = api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "a", {"spec": {"imageTag": "next"}})
    assert same["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]  # no-op: no write


def test_stale_resource_version_is_a_conflict(api, kube_emulator):
    created = api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    kube_emulator.patch("mpo", "echo", {"metadata": {"labels": {"by": "kubectl"}}})  # someone else writes

    stale = {**created, "spec": {**created["spec"], "imageTag": "v2"}}
    with pytest.raises(ApiException) as exc:
        api.replace_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", stale)
    assert exc.value.status == 409 and status_of(exc.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(exc.value)["message"]

    with pytest.raises(ApiException) as exc:
        api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", {
            "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"imageTag": "v2"}})
    assert exc.value.status == 409

    unconditional = {**stale, "metadata": {"name": "echo"}}
    with pytest.raises(ApiException) as exc:
        api.replace_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", unconditional)
    assert exc.value.status == 422  # custom resources refuse updates without a resourceVersion

    fresh = api.get_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")
    replaced = api.replace_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo",
                                                 {**fresh, "spec": {**fresh["spec"], "imageTag": "v2"}})
    assert replaced["spec"]["imageTag"] == "v2" and replaced["metadata"]["labels"] == {"by": "kubectl"}


def test_status_is_kept_apart_from_spec(api, kube_emulator):
    created = api.create_cluster_custom_object(GROUP, "v1alpha1", MPO,
                                               {**mpo_body("echo"), "status": {"message": "forged"}})
    assert "status" not in created  # create ignores status

    api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", {"status": {"message": "forged"}})
    assert "status" not in api.get_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")

    status = api.patch_cluster_custom_object_status(GROUP, "v1alpha1", MPO, "echo", {
        "status": {"imageDigest": "sha256:abc", "message": "Ready", "weight": 910},
        "spec": {"imageTag": "ignored"}, "metadata": {"labels": {"ignored": "yes"}}})
    assert status["status"] == {"imageDigest": "sha256:abc", "message": "Ready", "weight": 910}
    assert status["spec"]["imageTag"] == "main" and "labels" not in status["metadata"]
    assert status["metadata"]["generation"] == 1  # status writes do not bump generation

    fetched = api.get_cluster_custom_object_status(GROUP, "v1alpha1", MPO, "echo")
    replaced = api.replace_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", {
        **fetched, "spec": {**fetched["spec"], "imageTag": "v2"}, "status": {"message": "overwritten"}})
    assert replaced["status"]["message"] == "Ready" and replaced["metadata"]["generation"] == 2

    with pytest.raises(ApiException) as exc:
        api.patch_cluster_custom_object_status(GROUP, "v1alpha1", MPO, "echo", {"status": {"weight": "heavy"}})
    assert exc.value.status == 422


def test_merge_patch_semantics_and_patch_content_types(api, kube_emulator):
    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo",
                                    {"metadata": {"annotations": {"renew": "t1", "keep": "1"}}})
    # kubernetes 37 sends every patch_* dict as application/merge-patch+json (its only declared type)
    assert kube_emulator.requests[-1].content_type == "application/merge-patch+json"
    patched = api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo",
                                              {"metadata": {"annotations": {"renew": None}}})
    assert patched["metadata"]["annotations"] == {"keep": "1"}  # null deletes the key, the rest stays

    listed = api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", [
        {"op": "replace", "path": "/spec/imageTag", "value": "json"}], _content_type="application/json-patch+json")
    assert listed["spec"]["imageTag"] == "json"

    for content_type, body in [("application/strategic-merge-patch+json", {"spec": {"imageTag": "x"}}),
                               ("application/json-patch+json", {"spec": {"imageTag": "x"}})]:
        with pytest.raises(ApiException) as exc:  # the client turns a dict JSON patch into a strategic one
            api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", body, _content_type=content_type)
        assert exc.value.status == 415 and status_of(exc.value)["reason"] == "UnsupportedMediaType"
        assert kube_emulator.requests[-1].content_type == "application/strategic-merge-patch+json"


# ----- versions and discovery


@pytest.mark.parametrize(("served", "preferred", "groups"), [
    (["v1alpha1"], "v1alpha1", ["v1alpha1"]),
    (["v1alpha1", "v1alpha2"], "v1alpha2", ["v1alpha2", "v1alpha1"]),
    (["v1alpha2"], "v1alpha2", ["v1alpha2", "v1alpha1"]),  # v1alpha1 stays for ModuleSources
])
def test_discovery_of_served_versions(kube_emulator_factory, served, preferred, groups):
    emu = kube_emulator_factory(mpo_versions=served)
    api_client = config.new_client_from_config(config_file=emu.kubeconfig_path)
    group_list = client.ApisApi(api_client).get_api_versions()
    group = next(g for g in group_list.groups if g.name == GROUP)
    assert [v.version for v in group.versions] == groups and group.preferred_version.version == preferred

    # /apis/deckhouse.io has no generated method: serialize, call and deserialize by hand (the v37 way)
    request = api_client.param_serialize("GET", "/apis/deckhouse.io", header_params={"Accept": "application/json"},
                                         auth_settings=["BearerToken"])
    response = api_client.call_api(*request)
    response.read()
    api_group = api_client.response_deserialize(response, {"200": "V1APIGroup"}).data
    assert api_group.name == GROUP and [v.version for v in api_group.versions] == groups

    objects = client.CustomObjectsApi(api_client)
    for version in groups:
        resources = {r.name: r for r in objects.get_api_resources(GROUP, version).resources}
        assert ("modulepulloverrides" in resources) == (version in served)
        assert resources["modulesources"].short_names == ["ms"] if version == "v1alpha1" else True
        if version in served:
            mpo = resources["modulepulloverrides"]
            assert mpo.kind == "ModulePullOverride" and mpo.short_names == ["mpo"] and not mpo.namespaced
            assert {"create", "get", "list", "patch", "update", "delete"} <= set(mpo.verbs)
            assert resources["modulepulloverrides/status"].verbs == ["get", "patch", "update"]
    api_client.close()


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_unserved_version_answers_404_like_a_real_server(api, kube_emulator):
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    assert exc.value.status == 404
    assert status_of(exc.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "the server could not find the requested resource",
                                    "reason": "NotFound", "details": {}, "code": 404}
    assert exc.value.headers["Content-Type"] == "application/json"
    created = api.create_cluster_custom_object(GROUP, "v1alpha2", MPO, mpo_body("echo", "v1alpha2"))
    assert created["apiVersion"] == f"{GROUP}/v1alpha2"
    with pytest.raises(ApiException) as exc:
        api.get_cluster_custom_object(GROUP, "v1alpha2", MPO, "missing")
    assert exc.value.status == 404 and status_of(exc.value)["reason"] == "NotFound"
    assert status_of(exc.value)["message"] == 'modulepulloverrides.deckhouse.io "missing" not found'


@pytest.mark.kube(mpo_versions=["v1alpha1"])
def test_seed_era_cluster_has_no_v1alpha2(api, kube_emulator):
    with pytest.raises(ApiException) as exc:
        api.get_api_resources(GROUP, "v1alpha2")
    assert exc.value.status == 404


def test_one_object_served_in_every_version(api, kube_emulator):
    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo", source="example"))
    as_v2 = api.get_cluster_custom_object(GROUP, "v1alpha2", MPO, "echo")
    assert as_v2["apiVersion"] == f"{GROUP}/v1alpha2" and "source" not in as_v2["spec"]  # v1alpha2 has no source
    api.patch_cluster_custom_object(GROUP, "v1alpha2", MPO, "echo", {"spec": {"imageTag": "v2"}})
    as_v1 = api.get_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")
    assert as_v1["spec"] == {"source": "example", "imageTag": "v2", "scanInterval": "15s", "rollback": False}


def test_unknown_fields_are_pruned_with_a_warning(api, kube_emulator):
    _, _, headers = api.create_cluster_custom_object_with_http_info(
        GROUP, "v1alpha2", MPO, mpo_body("echo", "v1alpha2", source="example"))
    assert headers["Warning"] == '299 - "unknown field \\"spec.source\\""'
    assert "source" not in kube_emulator.get("mpo", "echo")["spec"]
    assert kube_emulator.writes(actor="http")[-1].warnings == ['unknown field "spec.source"']
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, "v1alpha2", MPO, mpo_body("strict", "v1alpha2", source="x"),
                                         field_validation="Strict")
    assert exc.value.status == 400 and 'unknown field "spec.source"' in status_of(exc.value)["message"]


@pytest.mark.parametrize(("version", "body", "field", "reason"), [
    ("v1alpha1", mpo_body("echo", scanInterval="abc"), "spec.scanInterval", "FieldValueInvalid"),
    ("v1alpha2", mpo_body("echo", "v1alpha2", imageTag=None), "spec.imageTag", "FieldValueRequired"),
    ("v1alpha1", {**mpo_body("echo"), "spec": {"imageTag": "main"}}, "spec.source", "FieldValueRequired"),
    ("v1alpha2", mpo_body("echo", "v1alpha2", imageTag=5), "spec.imageTag", "FieldValueTypeInvalid"),
    ("v1alpha2", mpo_body("Echo", "v1alpha2"), "metadata.name", "FieldValueInvalid"),
])
def test_invalid_bodies_answer_422_with_causes(api, kube_emulator, version, body, field, reason):
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, version, MPO, body)
    status = status_of(exc.value)
    assert exc.value.status == 422 and status["reason"] == "Invalid"
    assert [(c["field"], c["reason"]) for c in status["details"]["causes"]] == [(field, reason)]
    assert status["message"].startswith(f'ModulePullOverride.deckhouse.io "{body["metadata"]["name"]}" is invalid: ')
    assert kube_emulator.objects("mpo") == [] and kube_emulator.writes() == []


def test_module_source_schema_and_defaults(api, kube_emulator):
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ModuleSource", "metadata": {"name": "example"},
            "spec": {"registry": {"repo": "registry.example.io/deckhouse/modules"}}}
    created = api.create_cluster_custom_object(GROUP, "v1alpha1", MS, body)
    assert created["spec"]["registry"]["scheme"] == "HTTPS"
    body["metadata"]["name"] = "ftp"
    body["spec"]["registry"]["scheme"] = "FTP"
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, "v1alpha1", MS, body)
    assert status_of(exc.value)["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    assert kube_emulator.validation_errors("ms", body, "v1alpha1")[0]["field"] == "spec.registry.scheme"


# ----- deletion, selectors, watch


def test_finalizers_hold_a_deletion_until_removed(api, kube_emulator):
    body = mpo_body("echo")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, body)
    deleting = api.delete_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")
    assert deleting["metadata"]["deletionTimestamp"] and deleting["metadata"]["finalizers"] == ["example.com/hold"]
    assert api.get_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")["metadata"]["deletionTimestamp"]
    again = api.delete_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")
    assert again["metadata"]["resourceVersion"] == deleting["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:
        api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo",
                                        {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}})
    assert exc.value.status == 422

    api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        api.get_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo")
    assert exc.value.status == 404

    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("plain"))
    gone = api.delete_cluster_custom_object(GROUP, "v1alpha1", MPO, "plain")
    assert gone["metadata"]["name"] == "plain" and kube_emulator.get("mpo", "plain") is None


def test_label_selector_and_paging(api, kube_emulator):
    for name, labels in [("a", {"team": "x", "env": "dev"}), ("b", {"team": "y"}), ("c", {})]:
        body = mpo_body(name)
        body["metadata"]["labels"] = labels
        api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, body)

    def names(selector: str) -> list[str]:
        listing = api.list_cluster_custom_object(GROUP, "v1alpha1", MPO, label_selector=selector)
        return [i["metadata"]["name"] for i in listing["items"]]

    assert names("team=x") == ["a"]
    assert names("team") == ["a", "b"]
    assert names("team!=x") == ["b", "c"]
    assert names("!team") == ["c"]
    assert names("team in (x,y),env") == ["a"]
    with pytest.raises(ApiException) as exc:
        names("team=x=y")
    assert exc.value.status == 400

    page = api.list_cluster_custom_object(GROUP, "v1alpha1", MPO, limit=2)
    assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"] and page["metadata"]["remainingItemCount"] == 1
    rest = api.list_cluster_custom_object(GROUP, "v1alpha1", MPO, limit=2, _continue=page["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"] and "continue" not in rest["metadata"]


def test_watch_streams_changes(api, kube_emulator):
    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("before"))
    events: list[tuple[str, str]] = []

    def follow() -> None:
        stream = watch.Watch().stream(api.list_cluster_custom_object, GROUP, "v1alpha2", MPO, timeout_seconds=2)
        for event in stream:
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                break

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.3)
    kube_emulator.create_mpo("after", "main", source="example")
    kube_emulator.patch("mpo", "after", {"spec": {"imageTag": "v2"}})
    kube_emulator.delete("mpo", "after")
    watcher.join(timeout=5)
    assert events[:4] == [("ADDED", "before"), ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


# ----- write log, faults, kubeconfig


def test_write_log_tells_who_wrote_what(api, kube_emulator):
    kube_emulator.create_mpo("seeded", "main", source="example")
    api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    api.patch_cluster_custom_object(GROUP, "v1alpha1", MPO, "echo", {"metadata": {"annotations": {"renew": "1"}}})
    kube_emulator.patch_status("mpo", "echo", {"message": "Ready"})
    http = kube_emulator.writes(actor="http")
    assert [(w.method, w.name, w.version, w.subresource) for w in http] == [
        ("POST", "echo", "v1alpha1", None), ("PATCH", "echo", "v1alpha1", None)]
    assert http[1].body == {"metadata": {"annotations": {"renew": "1"}}}
    assert http[1].content_type == "application/merge-patch+json"
    assert all(kube_emulator.validation_errors("mpo", w.body, w.version) == [] for w in http if w.method == "POST")
    assert [w.actor for w in kube_emulator.writes()] == ["kubectl", "http", "http", "controller"]


def test_fault_injection(api, kube_emulator):
    kube_emulator.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            api.list_cluster_custom_object(GROUP, "v1alpha1", MPO)
        assert exc.value.status == 503 and status_of(exc.value)["reason"] == "ServiceUnavailable"
    assert api.list_cluster_custom_object(GROUP, "v1alpha1", MPO)["items"] == []

    kube_emulator.fail_next(1, status=429, method="POST")
    api.list_cluster_custom_object(GROUP, "v1alpha1", MPO)  # GETs are not affected
    with pytest.raises(ApiException) as exc:
        api.create_cluster_custom_object(GROUP, "v1alpha1", MPO, mpo_body("echo"))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    assert kube_emulator.objects("mpo") == []  # a failed request did not write

    port = kube_emulator.port
    kube_emulator.set_down(True)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(urllib3.exceptions.MaxRetryError):  # the pooled keep-alive connection was cut too
        api.list_cluster_custom_object(GROUP, "v1alpha1", MPO, _request_timeout=2)
    kube_emulator.set_down(False)
    assert kube_emulator.port == port
    assert api.list_cluster_custom_object(GROUP, "v1alpha1", MPO)["items"] == []

    kube_emulator.delay = 0.3
    started = time.monotonic()
    api.list_cluster_custom_object(GROUP, "v1alpha1", MPO)
    assert time.monotonic() - started >= 0.3


def test_load_kube_config_works(kube_emulator):
    configuration = client.Configuration()
    config.load_kube_config(config_file=kube_emulator.kubeconfig_path, client_configuration=configuration)
    assert configuration.host == kube_emulator.url
    with client.ApiClient(configuration) as api_client:
        assert client.CustomObjectsApi(api_client).list_cluster_custom_object(GROUP, "v1alpha1", MS)["items"] == []
    assert kube_emulator.requests[-1].headers.get("authorization") == "Bearer emulator-token"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="Debian's kubernetes-client not installed")
def test_kubectl_reads_the_emulator(kube_emulator):
    kube_emulator.create_mpo("echo", "main", source="example")
    result = subprocess.run(["kubectl", "--kubeconfig", kube_emulator.kubeconfig_path, "get", "mpo", "echo",
                             "-o", "jsonpath={.spec.imageTag}"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "main"


# ----- the simulated Deckhouse


def test_parse_scan_interval():
    assert parse_scan_interval("15s") == 15 and parse_scan_interval("1m30s") == 90
    assert parse_scan_interval("2h") == 7200 and parse_scan_interval("0s") == 0
    assert parse_scan_interval("") is None and parse_scan_interval("abc") is None


def source_repo(registry) -> str:
    """A repository of its own in the shared registry, so module discovery sees only this test's tags."""
    return f"{registry.host}/{registry.unique('src')}/modules"


def test_controller_writes_the_digest(kube_emulator, deckhouse_controller, registry):
    repo = source_repo(registry)
    digest = registry.push("echo", "main", "build 1", repo=repo)
    registry.publish_module("echo", repo=repo)
    kube_emulator.create_module_source("example", repo)
    kube_emulator.create_mpo("echo", "main", source="example", scan_interval="1s")

    mpo = kube_emulator.wait_for(lambda: (o := kube_emulator.get("mpo", "echo"))
                                 and o.get("status", {}).get("imageDigest") and o)
    assert mpo["status"]["imageDigest"] == digest
    assert mpo["status"]["message"] == "Ready" and mpo["status"]["weight"] == 910 and mpo["status"]["updatedAt"]
    assert mpo["metadata"]["finalizers"] == ["modules.deckhouse.io/mpo-finalizer"]
    assert mpo["metadata"]["annotations"]["modules.deckhouse.io/deployed-on"] == "master-0"

    source = kube_emulator.wait_for(lambda: (s := kube_emulator.get("ms", "example")) and s.get("status") and s)
    assert source["status"]["phase"] == "Active" and source["status"]["modulesCount"] == 1
    assert source["status"]["modules"][0]["name"] == "echo" and source["status"]["modules"][0]["overridden"] is True
    assert source["status"]["modules"][0]["checksum"].startswith("sha256:")

    # a new build under the same tag is picked up on the next scan (scanInterval 1s)
    rebuilt = registry.push("echo", "main", "build 2", repo=repo)
    kube_emulator.wait_for(lambda: kube_emulator.get("mpo", "echo")["status"]["imageDigest"] == rebuilt, timeout=5)
    assert [d.digest for d in deckhouse_controller.deployments] == [digest, rebuilt]
    controller_writes = kube_emulator.writes(actor="controller", resource="mpo")
    assert all(w.subresource == "status" or set(w.body) == {"metadata"} for w in controller_writes)
    assert not deckhouse_controller.errors


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_controller_renew_and_forced_renew(kube_emulator, registry):
    repo = source_repo(registry)
    digest = registry.push("echo", "main", "build 1", repo=repo)
    kube_emulator.create_module_source("example", repo)
    kube_emulator.create_mpo("echo", "main", scan_interval="1h")
    controller = DeckhouseController(kube_emulator)  # driven by hand: cycle()
    controller.cycle()
    assert kube_emulator.get("mpo", "echo")["status"]["imageDigest"] == digest

    rebuilt = registry.push("echo", "main", "build 2", repo=repo)
    controller.cycle()
    assert kube_emulator.get("mpo", "echo")["status"]["imageDigest"] == digest  # scanInterval not due yet
    kube_emulator.patch("mpo", "echo", {"metadata": {"annotations": {"renew": "2026-11-26T10:00:00Z"}}})
    controller.cycle()
    mpo = kube_emulator.get("mpo", "echo")
    assert mpo["status"]["imageDigest"] == rebuilt and "renew" not in mpo["metadata"]["annotations"]

    kube_emulator.patch("mpo", "echo", {"metadata": {"annotations": {"renew": "again"}}})
    controller.cycle()  # same digest: no redeploy, renew stays
    assert kube_emulator.get("mpo", "echo")["metadata"]["annotations"]["renew"] == "again"
    updated_at = kube_emulator.get("mpo", "echo")["status"]["updatedAt"]

    kube_emulator.patch("mpo", "echo", {"metadata": {"annotations": {"modules.deckhouse.io/renew": "true"}}})
    time.sleep(1.05)  # updatedAt has second precision
    controller.cycle()
    mpo = kube_emulator.get("mpo", "echo")
    assert not {"renew", "modules.deckhouse.io/renew"} & set(mpo["metadata"]["annotations"])
    assert mpo["status"]["updatedAt"] > updated_at
    assert [(d.digest, d.forced) for d in controller.deployments] == [(digest, False), (rebuilt, False),
                                                                       (rebuilt, True)]


@pytest.mark.kube(mpo_versions=["v1alpha1", "v1alpha2"])
def test_controller_messages(kube_emulator, registry):
    repo = source_repo(registry)
    kube_emulator.create_module_source("example", repo)
    kube_emulator.create_mpo("lost", "main", source="nowhere")
    kube_emulator.create_mpo("missing", "no-such-tag", source="example")
    controller = DeckhouseController(kube_emulator, source_map={"mapped": "absent"})
    kube_emulator.create_mpo("mapped", "main", version="v1alpha2")
    controller.cycle()
    assert kube_emulator.get("mpo", "lost")["status"]["message"] == 'ModuleSource "nowhere" not found'
    assert kube_emulator.get("mpo", "mapped")["status"]["message"] == "The source not found"
    message = kube_emulator.get("mpo", "missing")["status"]["message"]
    assert message.startswith("Download error: HEAD http://") and "404" in message


@pytest.mark.kube(mpo_versions=["v1alpha2"])
@pytest.mark.deckhouse(status_shape="old")
def test_controller_finalizer_and_old_status_shape(kube_emulator, deckhouse_controller, registry):
    repo = source_repo(registry)
    registry.push("echo", "main", repo=repo)
    registry.publish_module("echo", repo=repo)
    registry.publish_module("other", repo=repo)
    kube_emulator.create_module_source("example", repo)
    kube_emulator.create_mpo("echo", "main", rollback=True)
    kube_emulator.wait_for(lambda: kube_emulator.get("mpo", "echo").get("metadata", {}).get("finalizers"))
    source = kube_emulator.wait_for(lambda: (s := kube_emulator.get("ms", "example")) and s.get("status") and s)
    assert source["status"]["modules"] == [{"name": "echo", "policy": "deckhouse", "overridden": True},
                                           {"name": "other", "policy": "deckhouse"}]

    kube_emulator.delete("mpo", "echo")  # held by the controller's finalizer, released by the controller
    kube_emulator.wait_for(lambda: kube_emulator.get("mpo", "echo") is None)
    assert deckhouse_controller.deployments[-1].rollback
    assert not deckhouse_controller.errors


def test_emulator_as_context_manager():
    with KubeEmulator(mpo_versions=["v1alpha2"]) as emu:
        port = emu.port
        emu.create_mpo("echo", "main")
        assert [o["metadata"]["name"] for o in emu.objects("mpo")] == ["echo"]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
