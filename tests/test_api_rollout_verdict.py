"""The rollout wait decides through the verdict: the simulated Deckhouse runs real images from a real registry and
manages their Module (v1alpha1 or v1beta1); an image can fail its hooks or its deploy."""
# ruff: noqa: F401, F403, F811 - fixtures come from tests/test_api_rollout.py and tests/test_api_support.py

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides.api import rollout
from overrides.models import ClusterModule, ModuleHealth, ModulePullOverride, SyncState
from tests.kube.modules import DEPLOY_ERROR_MARK, HOOK_ERROR, HOOK_ERROR_MARK
from tests.test_api_rollout import OTHER_DIGEST, pipeline, portal_jobs, wait
from tests.test_api_support import *

BOTH_MODULE_VERSIONS = pytest.mark.parametrize(
    "kube_emulator", [{"module_versions": ["v1alpha1"]}, {"module_versions": ["v1beta1"]}], indirect=True,
    ids=["Module-v1alpha1", "Module-v1beta1"])


def upsert(api, module: str, tag: str = "pr1") -> None:
    response = api.put(f"/api/v1/overrides/{module}/", {"source": "dev", "imageTag": tag}, format="json")
    assert response.status_code in (200, 201), response.content


@BOTH_MODULE_VERSIONS
def test_rolled_out_only_once_the_module_is_ready(pipeline, registry, kube_emulator):
    api, module = pipeline
    digest = registry.push(module, "pr1", b"a good build")
    upsert(api, module)
    with portal_jobs() as errors:
        response = wait(api, module, digest=digest, timeout=60)
        body = response.json()
        assert response.status_code == 200, body
        assert body["state"] == "rolled-out" and body["verdict"]["state"] == "running"
        assert body["modulePhase"] == "Ready"
        # The same answer on the override resource, and the module's outcome in the digest history.
        resource = api.get(f"/api/v1/overrides/{module}/").json()
        assert resource["verdict"]["state"] == "running" and resource["verdict"]["since"]
        history = api.get(f"/api/v1/overrides/{module}/digests/", {"origin": "module"}).json()["results"]
        assert [(d["digest"], d["outcome"]) for d in history] == [(digest, "ready")]
        # A digest the cluster will never run: the timeout says the current verdict.
        response = wait(api, module, digest=OTHER_DIGEST, timeout=1)
        assert response.status_code == 408 and response.json()["verdict"]["state"] == "running"
        assert "Verdict: running" in response.json()["detail"]
    assert errors == []


@BOTH_MODULE_VERSIONS
def test_a_failing_hook_fails_the_wait_and_an_older_failure_never_fails_the_next(pipeline, registry, kube_emulator):
    api, module = pipeline
    broken = registry.push(module, "pr1", HOOK_ERROR_MARK + b" build one")
    upsert(api, module)
    with portal_jobs() as errors:
        response = wait(api, module, digest=broken, timeout=60)
        body = response.json()
        assert response.status_code == 409, body
        assert body["state"] == "failed" and body["verdict"]["state"] == "deploy-failed"
        assert HOOK_ERROR in body["verdict"]["reason"] and HOOK_ERROR in body["detail"]
        assert body["cluster"]["imageDigest"] == broken  # Deckhouse took the image: only the Module knows
        expected_phase = "Error" if kube_emulator.served_versions("modules") == ("v1alpha1",) else "Failed"
        assert body["modulePhase"] == expected_phase

        fixed = registry.push(module, "pr1", b"build two, hooks fixed")
        assert api.post(f"/api/v1/overrides/{module}/renew/", {}, format="json").status_code == 202
        response = wait(api, module, timeout=60)
        assert response.status_code == 200, response.json()
        assert response.json()["wanted"] == fixed and response.json()["verdict"]["state"] == "running"
    assert errors == []
    history = api.get(f"/api/v1/overrides/{module}/digests/", {"origin": "module"}).json()["results"]
    assert [(d["digest"], d["outcome"]) for d in history] == [(fixed, "ready"), (broken, "failed")]
    assert HOOK_ERROR in history[1]["reason"]


def test_a_failed_deploy_keeps_the_old_digest_and_fails_the_wait(pipeline, registry):
    api, module = pipeline
    first = registry.push(module, "pr1", b"build one")
    upsert(api, module)
    with portal_jobs() as errors:
        assert wait(api, module, digest=first, timeout=60).status_code == 200
        second = registry.push(module, "pr1", DEPLOY_ERROR_MARK + b" build two")
        assert api.post(f"/api/v1/overrides/{module}/renew/", {}, format="json").status_code == 202
        response = wait(api, module, digest=second, timeout=60)
    body = response.json()
    assert response.status_code == 409, body
    assert body["verdict"]["state"] == "deploy-failed" and body["cluster"]["message"].startswith("Deploy error:")
    assert body["cluster"]["imageDigest"] == first
    assert errors == []


@pytest.mark.django_db
def test_a_module_failure_seen_before_the_apply_does_not_fail_the_wait(make_override, settings):
    """The failure belongs to the previous spec: the wait goes on (and times out) instead of failing."""
    now = timezone.now()
    override = make_override(name="echo")
    wanted = "sha256:" + "c" * 64
    ModulePullOverride.objects.filter(pk=override.pk).update(
        sync_state=SyncState.SYNCED, synced_at=now, cluster_seen_at=now, status_image_digest=wanted,
        status_message="Ready", status_updated_at=now)
    row = ClusterModule.objects.create(
        override=override, digest=wanted, digest_seen_at=now - timedelta(minutes=5), api_version="v1alpha1",
        health=ModuleHealth.FAILED, phase="Error", reason="HookError: boom", failed_digest=wanted,
        failed_at=now - timedelta(minutes=1), failure="HookError: boom")
    fresh = ModulePullOverride.objects.select_related("source", "cluster_module").get(pk=override.pk)
    outcome = rollout.evaluate(fresh, wanted)
    assert outcome.state == rollout.WAITING and outcome.verdict.state == "deploy-failed"

    ClusterModule.objects.filter(pk=row.pk).update(failed_at=now + timedelta(seconds=1))
    fresh = ModulePullOverride.objects.select_related("source", "cluster_module").get(pk=override.pk)
    outcome = rollout.evaluate(fresh, wanted)
    assert outcome.state == rollout.FAILED and outcome.module_phase == "Error" and "HookError: boom" in outcome.detail
