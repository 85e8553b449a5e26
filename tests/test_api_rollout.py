"""GET /api/v1/overrides/{name}/rollout/: the pipeline's wait for a digest, against the real path.

A real registry (`registry`), the API-server emulator and the simulated Deckhouse controller; the portal's
own apply (`overrides.cluster.sync`), registry check (`overrides.polling.checks`) and read-back run in a
background loop, as the dispatcher would run them, while the test waits through the API.
"""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from overrides import services
from overrides.api import rollout, rollout_waits
from overrides.audit import Actor
from overrides.cluster import sync
from overrides.models import ApiToken, ModulePullOverride, ModuleSource
from overrides.polling import checks as polling
from tests.test_api_support import *

OTHER_DIGEST = "sha256:" + "0" * 64


@contextmanager
def portal_jobs(interval: float = 0.1) -> Iterator[list[str]]:
    """Apply, registry checks and read-back in a thread (its own DB connection); yields its errors."""
    stop, errors = threading.Event(), []

    def run() -> None:
        try:
            while not stop.is_set():
                for pk in ModuleSource.all_objects.values_list("pk", flat=True):
                    sync.apply_source(pk)
                for pk in ModulePullOverride.all_objects.values_list("pk", flat=True):
                    sync.apply_override(pk)
                    polling.check_override(pk, only_if_due=True)
                sync.read_back()
                stop.wait(interval)
        except Exception:  # noqa: BLE001 - reported by the test
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture
def pipeline(transactional_db, cluster_settings, deckhouse_controller, registry, ci_user):
    """A write client, a source on the test registry, and a fresh module name."""
    api = client_with(make_token(ci_user))
    response = api.put("/api/v1/sources/dev/", {"registry": {"repo": registry.repo, "scheme": "HTTP"}},
                       format="json")
    assert response.status_code == 201, response.content
    yield api, registry.unique("echo")
    assert not deckhouse_controller.errors


def wait(api, name: str, **params):
    return api.get(f"/api/v1/overrides/{name}/rollout/", params)


def test_waits_until_the_cluster_runs_the_digest(pipeline, registry):
    api, module = pipeline
    first = registry.push(module, "pr1", b"build one")
    assert api.put(f"/api/v1/overrides/{module}/", {"source": "dev", "imageTag": "pr1"},
                   format="json").status_code == 201
    with portal_jobs() as errors:
        response = wait(api, module, digest=first, timeout=60)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["state"] == "rolled-out" and body["wanted"] == first and body["cluster"]["imageDigest"] == first
        assert body["sync"]["state"] == "synced"

        # A new build of the same tag: renew, then wait without naming the digest. The portal waits for its own
        # registry check after the renew, so the old digest (which the cluster still runs) is not taken.
        second = registry.push(module, "pr1", b"build two")
        assert api.post(f"/api/v1/overrides/{module}/renew/", {}, format="json").status_code == 202
        response = wait(api, module, timeout=60)
        assert response.status_code == 200, response.json()
        assert response.json()["wanted"] == second and response.json()["cluster"]["imageDigest"] == second

        # A digest the cluster will never run: a clean timeout saying what runs and what was wanted.
        response = wait(api, module, digest=OTHER_DIGEST, timeout=1)
        assert response.status_code == 408
        body = response.json()
        assert body["state"] == "timeout" and body["wanted"] == OTHER_DIGEST
        assert body["cluster"]["imageDigest"] == second and second in body["detail"]
    assert errors == []
    digests = api.get(f"/api/v1/overrides/{module}/digests/", {"origin": "cluster"}).json()["results"]
    assert [d["digest"] for d in digests] == [second, first]


def test_fails_fast_when_the_controller_cannot_download(pipeline, registry):
    api, module = pipeline
    registry.push(module, "main", b"exists")
    api.put(f"/api/v1/overrides/{module}/", {"source": "dev", "imageTag": "no-such-tag"}, format="json")
    with portal_jobs() as errors:
        response = wait(api, module, digest=OTHER_DIGEST, timeout=120)
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["state"] == "failed" and body["cluster"]["message"].startswith("Download error:")
    assert "Download error:" in body["detail"] and body["waitedSeconds"] < 120
    assert errors == []


def test_deleted_while_waiting(pipeline, registry):
    api, module = pipeline
    registry.push(module, "pr1", b"x")
    api.put(f"/api/v1/overrides/{module}/", {"source": "dev", "imageTag": "pr1"}, format="json")
    override = ModulePullOverride.objects.get(name=module)
    timer = threading.Timer(0.5, lambda: (services.override_delete(actor=Actor.system("cli"), override=override),
                                          connection.close()))
    timer.start()
    response = wait(api, module, digest=OTHER_DIGEST, timeout=60)
    timer.join()
    assert response.status_code == 409 and response.json()["state"] == "deleted"


@pytest.mark.django_db
def test_sync_off_answers_at_once(api, make_override):
    make_override(name="echo")
    response = api.get("/api/v1/overrides/echo/rollout/", {"digest": OTHER_DIGEST, "timeout": 600})
    assert response.status_code == 409
    assert response.json()["state"] == "sync-off" and "no cluster" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "field"), [
    ({"digest": "latest"}, "digest"), ({"digest": "sha256:abc"}, "digest"), ({"timeout": 601}, "timeout"),
    ({"timeout": -1}, "timeout"), ({"timeout": "soon"}, "timeout"),
])
def test_bad_parameters_are_400(api, make_override, params, field):
    make_override(name="echo")
    response = api.get("/api/v1/overrides/echo/rollout/", params)
    assert response.status_code == 400 and field in response.json()


@pytest.mark.django_db
def test_unknown_override_is_404(api):
    assert api.get("/api/v1/overrides/nope/rollout/").status_code == 404


def _not_final(name: str) -> None:
    """Make the row say nothing final yet (sync pending), so a wait must hold a place."""
    ModulePullOverride.objects.filter(name=name).update(sync_state="pending")


@pytest.mark.django_db
def test_too_many_waits_at_once_is_429(api, make_override, settings):
    make_override(name="echo")
    _not_final("echo")
    settings.PORTAL_ROLLOUT_MAX_WAITS = 1
    rollout_waits.PLACES.take("token:elsewhere")
    try:
        response = api.get("/api/v1/overrides/echo/rollout/", {"timeout": 5})
    finally:
        rollout_waits.PLACES.give_back("token:elsewhere")
    assert response.status_code == 429 and response["Retry-After"] == "5"
    assert "maximum of rollout waits" in response.json()["detail"]


@pytest.mark.django_db
def test_one_token_cannot_hold_every_place(ci_user, make_override, settings):
    """Waits count per token: a token at its share is refused while another token still gets a place."""
    make_override(name="echo")
    _not_final("echo")
    settings.PORTAL_ROLLOUT_MAX_WAITS_PER_TOKEN = 2
    greedy, other = make_token(ci_user, write=False), make_token(ci_user, write=False)
    greedy_pk = ApiToken.objects.order_by("pk").values_list("pk", flat=True)[0]
    for _ in range(2):
        rollout_waits.PLACES.take(f"token:{greedy_pk}")
    try:
        refused = client_with(greedy).get("/api/v1/overrides/echo/rollout/", {"timeout": 5})
        admitted = client_with(other).get("/api/v1/overrides/echo/rollout/", {"timeout": 0})
    finally:
        for _ in range(2):
            rollout_waits.PLACES.give_back(f"token:{greedy_pk}")
    assert refused.status_code == 429 and "This token" in refused.json()["detail"]
    assert admitted.status_code == 408 and admitted.json()["state"] == "timeout"


def test_a_wait_is_watched_by_the_shared_poller_and_gives_its_place_back(transactional_db, api, make_override):
    make_override(name="echo")
    _not_final("echo")
    ticks = rollout_waits.POLLER.ticks
    response = api.get("/api/v1/overrides/echo/rollout/", {"digest": OTHER_DIGEST, "timeout": 1})
    assert response.status_code == 408, response.content
    body = response.json()
    assert body["state"] == "timeout" and body["wanted"] == OTHER_DIGEST and body["waitedSeconds"] >= 1
    assert rollout_waits.POLLER.ticks > ticks and rollout_waits.PLACES.held() == 0


def test_the_number_of_waits_is_the_setting_of_the_moment(settings):
    from rest_framework.exceptions import Throttled

    def takes(count: int) -> list[bool]:
        taken = []
        for _ in range(count):
            try:
                rollout_waits.PLACES.take("token:moment")
                taken.append(True)
            except Throttled:
                taken.append(False)
        return taken

    settings.PORTAL_ROLLOUT_MAX_WAITS = 2
    assert takes(3) == [True, True, False]
    settings.PORTAL_ROLLOUT_MAX_WAITS = 3
    assert takes(2) == [True, False]
    for _ in range(3):
        rollout_waits.PLACES.give_back("token:moment")
    assert rollout_waits.PLACES.held() == 0


def test_status_error_only_counts_when_written_after_the_apply():
    from datetime import timedelta

    from django.utils import timezone

    applied = timezone.now()
    override = ModulePullOverride(name="echo", sync_state="synced", synced_at=applied,
                                  status_message="Download error: manifest unknown",
                                  status_updated_at=(applied - timedelta(minutes=1)).replace(microsecond=0))
    assert rollout.is_failure_message(override.status_message)
    assert not rollout.status_is_current(override)  # an older error, from before this spec
    override.status_updated_at = applied.replace(microsecond=0)  # same second: the controller's resolution
    assert rollout.status_is_current(override)
    for message in ("Ready", "", "Deploying"):
        assert not rollout.is_failure_message(message)
    for message in ("The module not found", 'ModuleSource "dev" not found', "Validation error: bad"):
        assert rollout.is_failure_message(message)
