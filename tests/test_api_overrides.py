"""/api/v1/overrides/: CRUD, upsert, renew, validation, filters; every write audited with the token's owner."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import pytest

from overrides.models import ModulePullOverride, ModuleSource, ObjectChange
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

URL = "/api/v1/overrides/"


@pytest.fixture
def source(make_source):
    return make_source(name="dev", repo="registry.example.com/deckhouse/modules")


def body(**kw):
    return {"source": "dev", "imageTag": "main", **kw}


def test_create_returns_201_with_the_override_and_audits(api, source):
    response = api.post(URL, body(name="echo", imageTag="pr333", scanInterval="30s", changelogMessage="MR !12"),
                        format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["name"] == "echo" and data["source"] == "dev" and data["imageTag"] == "pr333"
    assert data["scanInterval"] == "30s" and data["rollback"] is False
    assert data["imageRef"] == "registry.example.com/deckhouse/modules/echo:pr333"
    assert data["sync"]["state"] == "off"  # no cluster in tests
    assert set(data["status"]) == {"imageDigest", "message", "updatedAt", "weight"}
    assert set(data["registry"]) == {"digest", "checkedAt", "error", "nextCheckAt"}
    assert "changelogMessage" not in data
    assert response["Location"].endswith("/api/v1/overrides/echo/")
    [change] = changes(ModulePullOverride.objects.get(name="echo"))
    assert_api_audit(change, response, action="create", message="MR !12")
    assert change.after["imageTag"] == "pr333"


def test_list_retrieve_filter_search_order(api, source, make_source, make_override):
    other = make_source(name="other", repo="registry.example.com/other")
    make_override(name="echo", source=source, image_tag="main")
    make_override(name="alpha", source=other, image_tag="pr1")
    make_override(name="zulu", source=source, image_tag="pr2")
    data = api.get(URL).json()
    assert data["count"] == 3 and [o["name"] for o in data["results"]] == ["alpha", "echo", "zulu"]
    assert [o["name"] for o in api.get(URL, {"source": "dev"}).json()["results"]] == ["echo", "zulu"]
    assert [o["name"] for o in api.get(URL, {"search": "PR"}).json()["results"]] == ["alpha", "zulu"]
    assert [o["name"] for o in api.get(URL, {"ordering": "-imageTag"}).json()["results"]] == ["zulu", "alpha", "echo"]
    assert api.get(URL, {"syncState": "off"}).json()["count"] == 3
    assert api.get(URL, {"sync_state": "synced"}).json()["count"] == 0
    page = api.get(URL, {"limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [o["name"] for o in page["results"]] == ["echo"] and page["next"]
    assert api.get(URL + "echo/").json()["imageTag"] == "main"
    assert api.get(URL + "nope/").status_code == 404
    assert api.get(URL, {"syncState": "bogus"}).status_code == 400


def test_put_upserts_201_then_200_and_repeating_changes_nothing(api, source):
    first = api.put(URL + "echo/", body(imageTag="pr1"), format="json")
    assert first.status_code == 201, first.json()
    second = api.put(URL + "echo/", body(imageTag="pr2", changelogMessage="pipeline 42"), format="json")
    assert second.status_code == 200 and second.json()["imageTag"] == "pr2"
    again = api.put(URL + "echo/", body(imageTag="pr2"), format="json")
    moved = {"updatedAt": again.json()["updatedAt"], "expiresAt": again.json()["expiresAt"]}
    assert again.status_code == 200 and again.json() == {**second.json(), **moved}
    assert again.json()["expiresAt"] >= second.json()["expiresAt"]  # the owner's repeat moves the expiry forward
    override = ModulePullOverride.objects.get(name="echo")
    create, update = changes(override)  # the repeat wrote no record
    assert_api_audit(create, first, action="create")
    assert_api_audit(update, second, action="update", message="pipeline 42")
    assert update.before["imageTag"] == "pr1" and update.after["imageTag"] == "pr2"


def test_put_replaces_the_whole_spec(api, source, make_override):
    make_override(name="echo", source=source, scan_interval="5m", rollback=True)
    response = api.put(URL + "echo/", body(), format="json")
    assert response.status_code == 200
    assert response.json()["scanInterval"] == "15s" and response.json()["rollback"] is False


def test_put_body_name_must_match_url(api, source):
    response = api.put(URL + "echo/", body(name="other"), format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert not ModulePullOverride.all_objects.exists()


def test_patch_changes_only_given_fields_and_audits(api, source, make_override):
    make_override(name="echo", source=source, scan_interval="1m")
    response = api.patch(URL + "echo/", {"imageTag": "pr9", "changelogMessage": "try pr9"}, format="json")
    assert response.status_code == 200
    assert response.json()["imageTag"] == "pr9" and response.json()["scanInterval"] == "1m"
    change = changes(ModulePullOverride.objects.get(name="echo"))[-1]
    assert_api_audit(change, response, action="update", message="try pr9")
    assert api.patch(URL + "nope/", {"imageTag": "x"}, format="json").status_code == 404


def test_delete_is_audited_and_gives_404_after(api, source, make_override):
    override = make_override(name="echo", source=source)
    response = api.delete(URL + "echo/?changelogMessage=merged")
    assert response.status_code == 204
    assert_api_audit(changes(override)[-1], response, action="delete", message="merged")
    assert api.get(URL + "echo/").status_code == 404
    assert api.delete(URL + "echo/").status_code == 404
    # Creating it again revives the row (its history stays).
    assert api.put(URL + "echo/", body(), format="json").status_code == 201
    assert ModulePullOverride.all_objects.filter(name="echo").count() == 1


def test_renew_returns_202_and_audits_force(api, source, make_override):
    override = make_override(name="echo", source=source)
    response = api.post(URL + "echo/renew/", {"force": True, "changelogMessage": "redeploy"}, format="json")
    assert response.status_code == 202 and response.json()["name"] == "echo"
    change = changes(override)[-1]
    assert_api_audit(change, response, action="renew", message="redeploy")
    assert change.after["force"] is True
    override.refresh_from_db()
    assert override.renew_requested_at is not None and override.renew_force
    assert api.post(URL + "echo/renew/", format="json").status_code == 202  # no body: force false
    assert api.post(URL + "nope/renew/", format="json").status_code == 404


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"name": "Echo"}, "name", "not a valid module name"),
        ({"name": "modules"}, "name", "reserved"),
        ({"name": "x" * 65}, "name", "64 characters"),
        ({"imageTag": ".bad"}, "imageTag", "not a valid image tag"),
        ({"imageTag": ""}, "imageTag", "cannot be blank"),
        ({"scanInterval": "0s"}, "scanInterval", "at least 1s"),
        ({"scanInterval": "1d"}, "scanInterval", "not a valid scan interval"),
        ({"scanInterval": "9" * 5000 + "s"}, "scanInterval", "no more than 32 characters"),
        ({"source": "missing"}, "source", 'no source named "missing"'),
        ({"rollback": "maybe"}, "rollback", "valid boolean"),
        ({"imageTag": None}, "imageTag", "may not be null"),
        ({"changelogMessage": "m" * 501}, "changelogMessage", "500"),
    ],
)
def test_validation_names_the_api_field(api, source, payload, field, text):
    response = api.post(URL, {**body(name="echo"), **payload}, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert field in errors and text in " ".join(errors[field]), errors
    assert not ModulePullOverride.all_objects.exists()
    assert not ObjectChange.objects.filter(object_type="modulepulloverride").exists()


def test_module_the_source_did_not_offer_is_refused_when_its_registry_cannot_be_listed_again(api, source):
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["echo", "foo"])
    response = api.put(URL + "bar/", body(), format="json")
    assert response.status_code == 400
    message = response.json()["name"][0]
    assert 'did not offer a module "bar" in its last known modules' in message
    assert "listing them again just now failed" in message
    assert api.put(URL + "echo/", body(), format="json").status_code == 201


def _source_listed_before_fresh_was_pushed(make_source, registry) -> ModuleSource:
    """Source "fresh-src", whose last listing found only "old"; then the module "fresh" was pushed (tag main)."""
    repo = f"{registry.host}/{registry.unique('src')}/modules"
    source = make_source(name="fresh-src", repo=repo, scheme="HTTP")
    registry.publish_module("old", repo=repo)
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["old"])
    registry.publish_module("fresh", repo=repo)
    registry.push("fresh", "main", repo=repo)
    return source


def test_a_module_pushed_after_the_last_discovery_is_accepted_at_once(api, make_source, registry):
    """A pipeline pushes a new module (its image and the source's listing tag) and upserts right away."""
    source = _source_listed_before_fresh_was_pushed(make_source, registry)
    response = api.put(URL + "fresh/", {"source": "fresh-src", "imageTag": "main"}, format="json")
    assert response.status_code == 201, response.json()
    source.refresh_from_db()
    assert source.discovered_modules == ["fresh", "old"]
    response = api.put(URL + "ghost/", {"source": "fresh-src", "imageTag": "main"}, format="json")
    assert response.status_code == 400
    message = response.json()["name"][0]
    assert 'does not offer a module "ghost": its modules, listed from the registry just now (' in message
    assert " UTC), are: fresh, old." in message


@pytest.mark.django_db(transaction=True)
def test_the_source_is_listed_again_before_the_write_takes_its_locks(api, make_source, registry, monkeypatch):
    """The one registry listing a missing module gets runs before the upsert's transaction (on SQLite the write
    lock is the whole database's), and the write then decides on the fresh list."""
    from django.db import connection

    from overrides import offers

    _source_listed_before_fresh_was_pushed(make_source, registry)
    in_transaction = []
    real = offers.discover_modules
    monkeypatch.setattr(offers, "discover_modules",  # observes, then lists for real
                        lambda *a, **kw: in_transaction.append(connection.in_atomic_block) or real(*a, **kw))
    assert api.put(URL + "fresh/", {"source": "fresh-src", "imageTag": "main"}, format="json").status_code == 201
    response = api.put(URL + "ghost/", {"source": "fresh-src", "imageTag": "main"}, format="json")
    assert response.status_code == 400 and "listed from the registry just now" in response.json()["name"][0]
    assert in_transaction == [False, False]


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b"null", b'{"imageTag": {"a": 1}}'])
def test_malformed_bodies_are_400_never_500(api, source, raw):
    response = api.generic("PUT", URL + "echo/", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")


def test_missing_required_fields_on_create(api, source):
    response = api.put(URL + "echo/", {}, format="json")
    assert response.status_code == 400 and {"source", "imageTag"} <= set(response.json())
    response = api.post(URL, {}, format="json")
    assert {"name", "source", "imageTag"} <= set(response.json())


def test_unknown_api_paths_are_json_404(api):
    for path in ("/api/v1/nothing/", "/api/v1/overrides", "/api/v2/overrides/", "/api/v1/overrides/a/b/c/"):
        response = api.get(path)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", path
    assert "end with a slash" in api.get("/api/v1/overrides").json()["detail"]
