"""The rollout verdict (overrides/verdict.py) from what the read-back mirrors: MPO status, Module (v1alpha1 and
v1beta1) and ModuleConfig, written as kubectl or Deckhouse would into the API-server emulator, read over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from overrides.cluster import sync
from overrides.cluster.modules import parse_module
from overrides.models import ClusterModule, DigestObservation, DigestOrigin, ModuleHealth, ModulePullOverride
from overrides.verdict import override_verdict, with_verdict_inputs

pytestmark = pytest.mark.django_db

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def stamp(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def verdict(name: str = "echo"):
    return override_verdict(with_verdict_inputs(ModulePullOverride.objects.all()).get(name=name))


def cluster_with_mpo(emu, digest: str = A, message: str = "Ready") -> None:
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    emu.patch_status("mpo", "echo", {"imageDigest": digest, "message": message, "updatedAt": stamp()})


def module_v1alpha1(emu, phase: str, ready: str, *, reason: str = "", message: str = "", at: str | None = None,
                    hooks: str = "") -> None:
    if emu.get("modules", "echo") is None:
        emu.create("modules", {"metadata": {"name": "echo"}, "properties": {"source": "dev", "weight": 900}})
    conditions = [{"type": "EnabledByModuleManager", "status": "True", "lastTransitionTime": stamp(-3600)},
                  {"type": "IsReady", "status": ready, "reason": reason, "message": message,
                   "lastTransitionTime": at or stamp()}]
    emu.patch_status("modules", "echo", {"phase": phase, "hooksState": hooks, "conditions": conditions})


def module_v1beta1(emu, state: str, *, message: str = "", digest: str = "", ready: bool = False) -> None:
    if emu.get("modules", "echo") is None:
        emu.create("modules", {"metadata": {"name": "echo"}, "spec": {"packageVersion": "dev"}})
    if digest:
        emu.patch("modules", "echo", {"metadata": {"annotations": {"modules.deckhouse.io/hash": digest}}})
    condition = {"type": "Ready", "status": "True" if ready else "False", "reason": "Ready" if ready else "Failing",
                 "message": message, "lastTransitionTime": stamp()}
    emu.patch_status("modules", "echo", {"summary": {"state": state, "message": message}, "conditions": [condition]})


def running_on_a(emu) -> None:
    """The cluster runs digest A: the MPO reports it and the Module is Ready, read back once."""
    cluster_with_mpo(emu, A)
    module_v1alpha1(emu, "Ready", "True")
    sync.read_back()
    assert verdict().state == "running"


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_v1alpha1_reconciling_then_ready_then_hook_error(cluster_settings):
    emu = cluster_settings
    cluster_with_mpo(emu)
    module_v1alpha1(emu, "Reconciling", "False", reason="Reconciling")
    assert sync.read_back().module_version == "v1alpha1"
    assert (verdict().state, verdict().summary) == ("deploying", "deploying (Reconciling)")

    module_v1alpha1(emu, "Ready", "True")
    summary = sync.read_back()
    result = verdict()
    assert result.state == "running" and result.digest == A and result.since is not None
    assert summary.module_outcomes == [f"echo@{A} ready"]
    [ready] = DigestObservation.objects.filter(origin=DigestOrigin.MODULE)
    assert (ready.digest, ready.outcome, ready.reason) == (A, "ready", "")
    sync.read_back()
    assert DigestObservation.objects.filter(origin=DigestOrigin.MODULE).count() == 1  # once per outcome

    module_v1alpha1(emu, "Error", "False", reason="HookError", message="hook migrate.py failed", hooks="migrate: x")
    sync.read_back()
    result = verdict()
    assert result.state == "deploy-failed" and "HookError: hook migrate.py failed" in result.reason
    assert "Hooks: migrate: x" in result.reason and "(Error)" in result.reason
    row = ClusterModule.objects.get()
    assert (row.phase, row.health, row.hooks_state) == ("Error", ModuleHealth.FAILED, "migrate: x")
    assert DigestObservation.objects.filter(origin=DigestOrigin.MODULE, outcome="failed").count() == 1


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_ready_from_before_the_new_digest_is_deploying_not_running(cluster_settings):
    emu = cluster_settings
    running_on_a(emu)

    # The controller reports a new digest; the Module still shows its old Ready (Deckhouse restarting).
    emu.patch_status("mpo", "echo", {"imageDigest": B, "updatedAt": stamp(5)})
    sync.read_back()
    result = verdict()
    assert result.state == "deploying" and "Ready from before this digest" in result.reason

    module_v1alpha1(emu, "Reconciling", "False")
    sync.read_back()
    assert verdict().state == "deploying"
    module_v1alpha1(emu, "Ready", "True", at=stamp(6))
    sync.read_back()
    assert (verdict().state, verdict().digest) == ("running", B)


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_a_failure_first_seen_with_its_digest_is_deploy_failed(cluster_settings):
    """The read-back (every 20 s) may miss the Reconciling phase: a new digest and a Module that already failed on
    it, seen in one pass. The failure's transition time (after the digest was reported) ties it to the digest."""
    emu = cluster_settings
    running_on_a(emu)
    emu.patch_status("mpo", "echo", {"imageDigest": B, "updatedAt": stamp(5)})
    module_v1alpha1(emu, "Error", "False", reason="HookError", message="hook migrate.py failed", at=stamp(6))
    sync.read_back()
    result = verdict()
    assert result.state == "deploy-failed" and result.digest == B and "HookError" in result.reason
    # A failure from before the digest is not about it.
    emu.patch_status("mpo", "echo", {"imageDigest": A, "updatedAt": stamp(10)})
    sync.read_back()
    assert verdict().state == "deploying"


@pytest.mark.kube(mpo_versions=["v1alpha2"], module_versions=["v1beta1"])
def test_v1beta1_summary_and_runtime_hash(cluster_settings):
    emu = cluster_settings
    cluster_with_mpo(emu, A)
    module_v1beta1(emu, "Updating", message="installing")
    assert sync.read_back().module_version == "v1beta1"
    assert verdict().state == "deploying"
    module_v1beta1(emu, "Ready", digest=A, ready=True)
    sync.read_back()
    assert verdict().state == "running"
    module_v1beta1(emu, "Degraded", message="hook failed: exit 1", digest=A)
    sync.read_back()
    result = verdict()
    assert result.state == "deploy-failed" and "hook failed: exit 1" in result.reason and "Degraded" in result.summary
    module_v1beta1(emu, "Suspended", message="disabled by ModuleConfig", digest=A)
    sync.read_back()
    assert verdict().state == "blocked"


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
@pytest.mark.parametrize(("message", "state"), [
    ("Download error: manifest unknown", "download-failed"),
    ("Validation error: bad openapi", "deploy-failed"),
    ("Deploy error: helm upgrade failed", "deploy-failed"),
    ("The module disabled", "blocked"),
    ('ModuleSource "dev" not found', "blocked"),
    ("Something new", "unknown"),
])
def test_mpo_messages(cluster_settings, message, state):
    emu = cluster_settings
    cluster_with_mpo(emu, A, message)
    module_v1alpha1(emu, "Ready", "True")
    sync.read_back()
    result = verdict()
    assert result.state == state and message in result.reason


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_module_config_error_is_deploy_failed(cluster_settings):
    emu = cluster_settings
    cluster_with_mpo(emu)
    module_v1alpha1(emu, "Ready", "True")
    emu.create("mc", {"metadata": {"name": "echo"}, "spec": {"enabled": True, "settings": {"replicas": "x"}}})
    emu.patch_status("mc", "echo", {"message": "Error: replicas must be an integer"})
    sync.read_back()
    result = verdict()
    assert result.state == "deploy-failed" and "replicas must be an integer" in result.reason


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=[])
def test_cluster_without_modules_is_unknown_never_running(cluster_settings):
    emu = cluster_settings
    cluster_with_mpo(emu)
    summary = sync.read_back()
    assert summary.ok and summary.module_version == ""
    result = verdict()
    assert result.state == "unknown" and "cannot read the cluster's Modules" in result.reason


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_no_status_and_no_module_and_an_unread_cluster(cluster_settings):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    sync.read_back()
    assert (verdict().state, verdict().summary) == ("unknown", "no status yet")
    emu.patch_status("mpo", "echo", {"imageDigest": A, "message": "Ready", "updatedAt": stamp()})
    sync.read_back()
    result = verdict()
    assert result.state == "unknown" and "no Module echo" in result.reason
    ModulePullOverride.objects.update(cluster_seen_at=timezone.now() - timedelta(minutes=10))
    result = verdict()
    assert result.state == "unknown" and "has not read this override from the cluster since" in result.reason


@pytest.mark.parametrize(("cr", "problem"), [
    ({}, "no status yet"),
    ({"status": "Ready"}, "status is not an object"),
    ({"status": {}}, "status.phase is missing"),
    ({"status": {"phase": 7}}, "status.phase is not a string"),
    ({"status": {"phase": "Hibernating"}}, "not a phase the portal knows"),
    ({"status": {"phase": "Ready", "conditions": "yes"}}, "status.conditions is not a list"),
    ({"status": {"phase": "Ready", "conditions": [{"status": "True"}]}}, "status.conditions[0].type is missing"),
    ({"status": {"phase": "Ready", "conditions": [7]}}, "status.conditions[0] is not an object"),
])
def test_a_v1alpha1_module_the_portal_cannot_read_is_unknown(cr, problem):
    view = parse_module(cr, "v1alpha1")
    assert view.health == ModuleHealth.UNKNOWN and any(problem in p for p in view.problems), view.problems


@pytest.mark.parametrize(("cr", "problem"), [
    ({"status": {}}, "status.summary is missing"),
    ({"status": {"summary": []}}, "status.summary is not an object"),
    ({"status": {"summary": {"state": "Sleeping"}}}, "not a state the portal knows"),
    ({"status": {"summary": {"state": ["Ready"]}}}, "status.summary.state is not a string"),
    ({"metadata": "x", "spec": 3, "status": {"summary": {"message": "hi"}}}, "status.summary.state is missing"),
])
def test_a_v1beta1_module_the_portal_cannot_read_is_unknown(cr, problem):
    view = parse_module(cr, "v1beta1")
    assert view.health == ModuleHealth.UNKNOWN and any(problem in p for p in view.problems), view.problems


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_a_module_of_unknown_shape_never_runs(cluster_settings, client, admin_user):
    """Straight into the store (a newer CRD's values the emulated schema would refuse): unknown, never a 500."""
    emu = cluster_settings
    cluster_with_mpo(emu)
    module_v1alpha1(emu, "Ready", "True")
    with emu.store.lock:
        emu.store.objects["modules"]["echo"]["status"] = {"phase": {"new": "shape"}, "conditions": [None, 3]}
        emu.store.objects["modules"]["echo"]["metadata"]["resourceVersion"] = "999999"
    sync.read_back()
    result = verdict()
    assert result.state == "unknown" and "status.phase is not a string" in result.reason
    client.force_login(admin_user)
    for url in ("/", "/overrides/echo/", "/overrides/echo/live/"):
        response = client.get(url)
        assert response.status_code == 200 and b'data-verdict="unknown"' in response.content


def _state(override, **module):
    """A synced override the cluster reports on digest A, with its mirrored Module."""
    now = timezone.now()
    ModulePullOverride.objects.filter(pk=override.pk).update(
        sync_state="synced", synced_at=now, cluster_seen_at=now, status_image_digest=A, status_message="Ready",
        registry_digest=A, registry_checked_at=now)
    return ClusterModule.objects.create(override=override, digest=A, digest_seen_at=now, api_version="v1alpha1",
                                        health_seen_at=now, **module)


def test_dashboard_and_api_filter_by_verdict(client, admin_user, make_source, make_override):
    source = make_source()
    _state(make_override(name="alpha", source=source), health=ModuleHealth.READY, phase="Ready", ready_digest=A,
           ready_at=timezone.now())
    _state(make_override(name="beta", source=source), health=ModuleHealth.RECONCILING, phase="Reconciling",
           conditions=[{"type": "IsReady", "status": "False", "reason": "Reconciling", "message": "hooks running",
                        "lastTransitionTime": "2026-12-01T10:00:00Z"}], hooks_state="2 of 5 hooks done")
    make_override(name="gamma", source=source)  # cluster sync is off in this test
    client.force_login(admin_user)

    def names(query):
        html = client.get("/dashboard/rows/" + query).content.decode()
        return {n for n in ("alpha", "beta", "gamma") if f'data-key="{n}"' in html}

    assert names("?verdict=running") == {"alpha"}
    assert names("?verdict=deploying") == {"beta"}
    assert names("?verdict=sync-off") == {"gamma"}
    assert names("?verdict=bogus") == {"alpha", "beta", "gamma"}  # a nonsense filter never fails the page
    page = client.get("/overrides/beta/").content.decode()
    assert 'data-verdict="deploying"' in page and "Reconciling" in page and "2 of 5 hooks done" in page
    assert "<strong>IsReady</strong>=False (Reconciling): hooks running" in page

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    listed = api.get("/api/v1/overrides/", {"verdict": "running"}).json()["results"]
    assert [(o["name"], o["verdict"]["state"]) for o in listed] == [("alpha", "running")]
    assert set(listed[0]["verdict"]) == {"state", "summary", "reason", "since"}
    assert api.get("/api/v1/overrides/", {"verdict": "nope"}).status_code == 400


@pytest.mark.parametrize(("served", "chosen"), [(["v1alpha1"], "v1alpha1"), (["v1beta1"], "v1beta1"),
                                                (["v1alpha1", "v1beta1"], "v1beta1")])
def test_the_module_version_is_discovered(kube_emulator_factory, settings, served, chosen):
    from overrides.cluster import client as cluster

    emu = kube_emulator_factory(module_versions=served)
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", emu.kubeconfig_path
    cluster.reset()
    assert cluster.module_version() == chosen
    settings.PORTAL_MODULE_API_VERSION = "v1alpha1"
    assert cluster.module_version() == "v1alpha1"  # the pin wins, without discovery


def test_no_module_api_is_a_clear_error(kube_emulator_factory, settings):
    from overrides.cluster import client as cluster
    from overrides.cluster.client import ClusterError

    emu = kube_emulator_factory(module_versions=[])
    settings.PORTAL_CLUSTER, settings.PORTAL_KUBECONFIG = "on", emu.kubeconfig_path
    cluster.reset()
    with pytest.raises(ClusterError) as failed:
        cluster.module_version()
    assert failed.value.kind == "unserved" and "serves no Module API" in failed.value.message
    assert cluster.mpo_version() == "v1alpha1"  # the MPO discovery is not disturbed


@pytest.mark.kube(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"])
def test_a_wait_for_a_running_digest_is_not_held_up_by_a_newer_build(cluster_settings):
    """Pipeline A waits for its digest; pipeline B pushed a newer one to the tag meanwhile: A's build runs."""
    from overrides.api import rollout

    emu = cluster_settings
    cluster_with_mpo(emu, A)
    module_v1alpha1(emu, "Ready", "True")
    sync.read_back()
    ModulePullOverride.objects.update(registry_digest=B, registry_checked_at=timezone.now())
    override = with_verdict_inputs(ModulePullOverride.objects.select_related("source")).get(name="echo")
    assert override_verdict(override).state == "pending"
    outcome = rollout.evaluate(override, A)
    assert outcome.state == rollout.ROLLED_OUT and outcome.verdict.state == "running"
