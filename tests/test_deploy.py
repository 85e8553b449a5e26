"""The Kubernetes manifests (deploy/): every overlay renders with `kubectl kustomize`, every object validates
offline against the Kubernetes API schemas (kubernetes-validate), and the production rules hold: non-root,
read-only root file system, no capabilities, requests and limits, probes, tokens only where the API is called,
settings in a hashed ConfigMap, the Secret referenced and never committed."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy import DEPLOY_DIR, OVERLAYS, kubectl, one, render

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders deploy/)")

CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor"),
                ("deckhouse.io/v1", "DexClient")}  # DexClient: tests/test_deploy_dexclient.py
SECRET = "mpo-portal"
SECRET_KEYS = {"PORTAL_SECRET_KEY", "PORTAL_ENCRYPTION_KEYS", "DATABASE_URL", "PORTAL_REDIS_URL",
               "PORTAL_WEBHOOK_SECRET", "PORTAL_METRICS_TOKEN"}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return request.param, render(request.param)


def _pod_specs(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


def test_every_object_validates_against_the_kubernetes_schemas(rendered):
    import kubernetes_validate

    name, objects = rendered
    version = kubernetes_validate.latest_version()
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue  # a CRD: no schema offline (checked by hand in the Deckhouse test below)
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {obj['kind']} {obj['metadata']['name']} is invalid: {exc.message} at {exc.path}")


def test_pods_run_locked_down(rendered):
    name, objects = rendered
    for obj, spec in _pod_specs(objects):
        where = f"{name}: {obj['kind']} {obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert [m["mountPath"] for m in container.get("volumeMounts", [])] == ["/tmp"], where
        assert all(set(v) == {"name", "emptyDir"} for v in spec.get("volumes", [])), where


def test_only_the_pods_that_call_the_kubernetes_api_mount_its_token(rendered):
    _, objects = rendered
    assert one(objects, "ServiceAccount", "mpo-portal")["automountServiceAccountToken"] is False
    mounts = {obj["metadata"]["name"]: spec.get("automountServiceAccountToken") for obj, spec in _pod_specs(objects)}
    assert mounts == {"mpo-portal-web": True, "mpo-portal-worker": True, "mpo-portal-migrate": False}
    assert {spec["serviceAccountName"] for _, spec in _pod_specs(objects)} == {"mpo-portal"}


def test_roles_probes_and_replicas(rendered):
    _, objects = rendered
    web, worker = one(objects, "Deployment", "mpo-portal-web"), one(objects, "Deployment", "mpo-portal-worker")
    assert web["spec"]["replicas"] == 2
    web_container = web["spec"]["template"]["spec"]["containers"][0]
    assert web_container["args"] == ["web"]
    assert web_container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert web_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker_container = worker["spec"]["template"]["spec"]["containers"][0]
    assert worker_container["args"] == ["worker"]
    assert worker_container["livenessProbe"]["exec"]["command"] == ["/app/container/entrypoint", "probe"]
    for deployment in (web, worker):  # both wait for the migrate Job's work
        assert [c["args"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == [["wait-migrated"]]
    assert one(objects, "Job", "mpo-portal-migrate")["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate"]
    budgets = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert budgets["mpo-portal-web"]["minAvailable"] == 1 and budgets["mpo-portal-worker"]["maxUnavailable"] == 1
    service = one(objects, "Service", "mpo-portal-web")
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_settings_in_a_hashed_config_map_and_the_secret_only_referenced(rendered):
    _, objects = rendered
    assert not [o for o in objects if o["kind"] == "Secret"]  # never committed: created in the cluster
    config = one(objects, "ConfigMap")
    assert config["metadata"]["name"].startswith("mpo-portal-settings-")  # the generator's hash: a change rolls
    assert not SECRET_KEYS & set(config["data"])
    for obj, spec in _pod_specs(objects):
        for container in spec.get("initContainers", []) + spec["containers"]:
            refs = {next(iter(source)): source[next(iter(source))]["name"] for source in container["envFrom"]}
            assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": SECRET}, obj["metadata"]


def test_the_secret_from_env_component_rolls_pods_on_a_change(tmp_path):
    shutil.copytree(DEPLOY_DIR, tmp_path / "deploy")
    component = tmp_path / "deploy" / "components" / "secret-from-env"
    (component / "secret.env").write_text((component / "secret.env.example").read_text())
    (tmp_path / "deploy" / "mine").mkdir()
    (tmp_path / "deploy" / "mine" / "kustomization.yaml").write_text(
        "resources: [../deckhouse]\ncomponents: [../components/secret-from-env]\n")
    objects = render(tmp_path / "deploy" / "mine")
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"].startswith(f"{SECRET}-") and set(secret["data"]) == SECRET_KEYS
    for _, spec in _pod_specs(objects):
        assert {s["secretRef"]["name"] for c in spec["containers"] for s in c["envFrom"] if "secretRef" in s} == {
            secret["metadata"]["name"]}
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == secret["metadata"]["name"]
    pod_monitor = one(objects, "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["authorization"]["credentials"]["name"] == secret[
        "metadata"]["name"]


def test_deckhouse_overlay_ingress_tls_and_prometheus():
    objects = render("deckhouse")
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in (
        "Namespace", "ClusterRole", "ClusterRoleBinding")} == {"mpo-portal"}
    namespace = one(objects, "Namespace", "mpo-portal")
    assert namespace["metadata"]["labels"]["prometheus.deckhouse.io/monitor-watcher-enabled"] == "true"
    ingress = one(objects, "Ingress", "mpo-portal")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "mpo-portal-web", "port": {"name": "http"}}
    monitor = one(objects, "ServiceMonitor", "mpo-portal")
    assert monitor["metadata"]["labels"]["prometheus"] == "main"
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": SECRET,
                                                                          "key": "PORTAL_METRICS_TOKEN"}}
    web = one(objects, "Service", "mpo-portal-web")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= web["metadata"]["labels"].items()
    pod_monitor = one(objects, "PodMonitor", "mpo-portal-worker")
    assert pod_monitor["metadata"]["labels"]["prometheus"] == "main"
    worker = one(objects, "Deployment", "mpo-portal-worker")["spec"]["template"]
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= worker["metadata"]["labels"].items()
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert endpoint["authorization"] == monitor["spec"]["endpoints"][0]["authorization"]
    assert {"name": "metrics", "containerPort": 9100} in worker["spec"]["containers"][0]["ports"]
    config = one(objects, "ConfigMap")["data"]
    assert config["PORTAL_ALLOWED_HOSTS"] == ingress["spec"]["rules"][0]["host"]
    assert config["PORTAL_CSRF_TRUSTED_ORIGINS"] == f"https://{ingress['spec']['rules'][0]['host']}"
    images = {c["image"] for _, spec in _pod_specs(objects) for c in spec["containers"]}
    assert images == {"registry.example.com/platform/mpo-portal:1.0.0"}


def test_a_changed_setting_renames_the_config_map_so_the_pods_roll(tmp_path):
    shutil.copytree(DEPLOY_DIR, tmp_path / "deploy")
    kustomization = tmp_path / "deploy" / "deckhouse" / "kustomization.yaml"
    before = one(render(tmp_path / "deploy" / "deckhouse"), "ConfigMap")["metadata"]["name"]
    kustomization.write_text(kustomization.read_text().replace("PORTAL_NUM_PROXIES=1", "PORTAL_NUM_PROXIES=2"))
    objects = render(tmp_path / "deploy" / "deckhouse")
    after = one(objects, "ConfigMap")["metadata"]["name"]
    assert after != before  # a new name in every pod template: a new ReplicaSet, a rollout
    for _, spec in _pod_specs(objects):
        assert {s["configMapRef"]["name"] for c in spec["containers"] for s in c["envFrom"] if "configMapRef" in s} \
            == {after}
