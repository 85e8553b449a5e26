"""/api/v1/audit/ and /api/v1/overrides/{name}/digests/: read-only history, filtered and paginated."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides.models import DigestObservation, ModulePullOverride, ObjectChange
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

AUDIT = "/api/v1/audit/"


@pytest.fixture
def history(api, make_source):
    """Changes from the API (the CI user) and from the CLI actor (make_source)."""
    make_source(name="dev")
    api.put("/api/v1/overrides/echo/", {"source": "dev", "imageTag": "pr1"}, format="json")
    api.patch("/api/v1/overrides/echo/", {"imageTag": "pr2", "changelogMessage": "second try"}, format="json")
    api.post("/api/v1/overrides/echo/renew/", {}, format="json")
    api.put("/api/v1/overrides/other/", {"source": "dev", "imageTag": "main"}, format="json")
    return ModulePullOverride.objects.get(name="echo")


def names(response) -> list[tuple[str, str]]:
    return [(r["objectName"], r["action"]) for r in response.json()["results"]]


def test_audit_lists_newest_first_with_api_names(api, history):
    data = api.get(AUDIT).json()
    assert data["count"] == 5
    assert names(api.get(AUDIT)) == [("other", "create"), ("echo", "renew"), ("echo", "update"), ("echo", "create"),
                                     ("dev", "create")]
    update = data["results"][2]
    assert set(update) == {"id", "time", "user", "identity", "context", "requestId", "action", "objectType", "objectId",
                           "objectName", "before", "after", "message"}
    assert update["user"] == "ci-bot" and update["context"] == "api" and update["message"] == "second try"
    assert update["before"]["imageTag"] == "pr1" and update["after"]["imageTag"] == "pr2"
    assert api.get(f"{AUDIT}{update['id']}/").json() == update
    assert api.get(f"{AUDIT}999999/").status_code == 404


def test_audit_filters(api, history):
    assert names(api.get(AUDIT, {"objectType": "override", "objectId": history.pk})) == [
        ("echo", "renew"), ("echo", "update"), ("echo", "create")]
    assert names(api.get(AUDIT, {"objectType": "modulepulloverride", "objectName": "other"})) == [("other", "create")]
    assert names(api.get(AUDIT, {"objectType": "source"})) == [("dev", "create")]
    assert len(names(api.get(AUDIT, {"user": "ci-bot"}))) == 4
    assert names(api.get(AUDIT, {"context": "cli"})) == [("dev", "create")]
    assert names(api.get(AUDIT, {"action": ["renew", "update"]})) == [("echo", "renew"), ("echo", "update")]
    assert names(api.get(AUDIT, {"search": "second"})) == [("echo", "update")]
    change = ObjectChange.objects.get(action="renew")
    assert names(api.get(AUDIT, {"requestId": str(change.request_id)})) == [("echo", "renew")]
    ObjectChange.objects.filter(object_repr="dev").update(time=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ("dev", "create") not in names(api.get(AUDIT, {"since": since}))
    assert names(api.get(AUDIT, {"until": since})) == [("dev", "create")]
    assert [r["objectName"] for r in api.get(AUDIT, {"ordering": "time"}).json()["results"]][0] == "dev"


def test_audit_times_with_any_offset_compare_in_utc(api, history):
    # PostgreSQL refuses offsets beyond ±15:59 in a query; Python accepts up to ±24h: converted to UTC first.
    assert len(names(api.get(AUDIT, {"until": "2275-12-03T10:37:05+18:05"}))) == 5
    assert names(api.get(AUDIT, {"since": "2275-12-03T10:37:05-18:05"})) == []


@pytest.mark.parametrize("query", [{"objectType": "pod"}, {"objectId": "x"}, {"since": "yesterday"},
                                   {"requestId": "nope"}, {"action": "explode"},
                                   {"since": "0001-01-01T00:10:00+18:05"}])
def test_audit_bad_filters_are_400(api, history, query):
    response = api.get(AUDIT, query)
    assert response.status_code == 400 and list(response.json()) == list(query)


def test_digest_history_newest_first_and_filtered(api, make_override):
    override = make_override(name="echo")
    now = timezone.now()
    for i, origin in enumerate(["registry", "cluster", "registry"]):
        DigestObservation.objects.create(override=override, digest=f"sha256:{i:064d}", image_ref=override.image_ref,
                                         origin=origin, observed_at=now + timedelta(seconds=i),
                                         previous_digest=f"sha256:{i - 2:064d}" if i == 2 else "")
    data = api.get("/api/v1/overrides/echo/digests/").json()
    assert "count" not in data  # no COUNT over the whole history (cursor paging)
    assert [d["digest"][-1] for d in data["results"]] == ["2", "1", "0"]
    assert data["results"][0] == {"digest": f"sha256:{2:064d}", "previousDigest": f"sha256:{0:064d}",
                                  "imageRef": override.image_ref, "origin": "registry",
                                  "observedAt": data["results"][0]["observedAt"], "renewedAt": None, "outcome": "",
                                  "reason": ""}
    assert [d["origin"] for d in api.get("/api/v1/overrides/echo/digests/", {"origin": "cluster"}).json()["results"]] \
        == ["cluster"]
    page = api.get("/api/v1/overrides/echo/digests/", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert api.get("/api/v1/overrides/nope/digests/").status_code == 404
