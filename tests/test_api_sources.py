"""/api/v1/sources/: CRUD with audit, dockerCfg write-only (never in a response, audit record or log)."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import logging

import pytest

from overrides.models import ModuleSource, ObjectChange
from tests.registries import make_docker_cfg
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

URL = "/api/v1/sources/"
REPO = "registry.example.com/deckhouse/modules"
SECRET_PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def secret():
    return make_docker_cfg("registry.example.com", "robot", SECRET_PASSWORD)


def test_create_get_list_with_write_only_credentials(api, secret):
    response = api.post(URL, {"name": "dev", "registry": {"repo": REPO, "dockerCfg": secret},
                              "changelogMessage": "new registry"}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["registry"] == {"repo": REPO, "scheme": "HTTPS", "ca": ""}
    assert data["hasCredentials"] is True and data["builtin"] is False
    assert data["sync"]["state"] == "off" and data["modules"] == []
    assert set(data["status"]) == {"modulesCount", "message", "syncTime", "phase"}
    source = ModuleSource.objects.get(name="dev")
    assert source.docker_cfg == secret
    [change] = changes(source)
    assert_api_audit(change, response, action="create", message="new registry")
    assert change.after["registry"]["dockerCfg"] == "***"
    assert api.get(URL + "dev/").json() == data
    assert api.get(URL).json()["results"] == [data]


def test_modules_merge_discovery_and_cluster_status(api, make_source):
    source = make_source(name="dev")
    ModuleSource.objects.filter(pk=source.pk).update(
        discovered_modules=["echo", "foo"],
        status_modules=[{"name": "foo", "policy": "Auto", "overridden": True, "version": "v1.2.0", "checksum": "",
                         "error": ""}, {"name": "bar", "overridden": False}],
    )
    modules = {m["name"]: m for m in api.get(URL + "dev/").json()["modules"]}
    assert list(modules) == ["bar", "echo", "foo"]
    assert modules["echo"] == {"name": "echo", "discovered": True, "policy": None, "overridden": None,
                               "version": None, "checksum": None, "error": None}
    assert modules["foo"]["discovered"] and modules["foo"]["overridden"] and modules["foo"]["version"] == "v1.2.0"
    assert not modules["bar"]["discovered"] and modules["bar"]["overridden"] is False


def test_put_upserts_and_keeps_credentials_when_omitted(api, secret):
    created = api.put(URL + "dev/", {"registry": {"repo": REPO, "dockerCfg": secret}}, format="json")
    assert created.status_code == 201
    updated = api.put(URL + "dev/", {"registry": {"repo": REPO, "scheme": "HTTP"}}, format="json")
    assert updated.status_code == 200 and updated.json()["registry"]["scheme"] == "HTTP"
    assert updated.json()["hasCredentials"] is True
    assert ModuleSource.objects.get(name="dev").docker_cfg == secret
    cleared = api.patch(URL + "dev/", {"registry": {"dockerCfg": ""}}, format="json")
    assert cleared.status_code == 200 and cleared.json()["hasCredentials"] is False
    source = ModuleSource.objects.get(name="dev")
    create, scheme, clear = changes(source)
    assert_api_audit(scheme, updated, action="update")
    assert clear.before["registry"]["dockerCfg"] == "***" and clear.after["registry"]["dockerCfg"] == ""


def test_patch_nested_registry_field(api, make_source):
    make_source(name="dev", repo=REPO)
    response = api.patch(URL + "dev/", {"registry": {"repo": "registry.example.com/other"}}, format="json")
    assert response.status_code == 200 and response.json()["registry"]["repo"] == "registry.example.com/other"
    assert response.json()["registry"]["scheme"] == "HTTPS"


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"registry": {"repo": "https://registry.example.com/x"}}, "registry.repo", "without a scheme"),
        ({"registry": {"repo": "Not A Repo"}}, "registry.repo", "not a valid repository"),
        ({"registry": {"repo": REPO, "scheme": "FTP"}}, "registry.scheme", "not a valid choice"),
        ({"registry": {"repo": REPO, "ca": "not a pem"}}, "registry.ca", "not a PEM certificate"),
        ({"registry": {"repo": REPO, "dockerCfg": "%%%"}}, "registry.dockerCfg", "not base64"),
        ({"registry": {"repo": REPO, "dockerCfg": make_docker_cfg("other.example.com", "u", "p")}},
         "registry.dockerCfg", "credentials not found"),
        ({"registry": "x"}, "registry", "Expected a dictionary"),
        ({}, "registry", "required"),
        ({"name": "Bad Name", "registry": {"repo": REPO}}, "name", "not a valid source name"),
    ],
)
def test_validation_names_the_api_field(api, payload, field, text):
    response = api.post(URL, {"name": "dev", **payload}, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert field in errors and text in " ".join(errors[field]), errors
    assert not ModuleSource.all_objects.exists()


def test_delete_refused_while_used_then_allowed(api, make_source, make_override):
    source = make_source(name="dev")
    override = make_override(name="echo", source=source)
    refused = api.delete(URL + "dev/")
    assert refused.status_code == 409 and "echo" in refused.json()["detail"]
    assert api.delete("/api/v1/overrides/echo/").status_code == 204
    response = api.delete(URL + "dev/", {"changelogMessage": "gone"}, format="json")
    assert response.status_code == 204
    assert_api_audit(changes(source)[-1], response, action="delete", message="gone")
    assert api.get(URL + "dev/").status_code == 404
    assert override.pk


def test_the_deckhouse_source_is_read_only(api):
    ModuleSource.objects.create(name="deckhouse", repo="registry.deckhouse.io/deckhouse/ce/modules", managed=False)
    assert api.get(URL + "deckhouse/").json()["builtin"] is True
    response = api.patch(URL + "deckhouse/", {"releaseChannel": "Stable"}, format="json")
    assert response.status_code == 400 and "managed by Deckhouse" in response.json()["name"][0]
    assert api.put(URL + "deckhouse/", {"registry": {"repo": REPO}}, format="json").status_code == 400
    assert api.delete(URL + "deckhouse/").status_code == 409
    assert api.post(URL, {"name": "deckhouse", "registry": {"repo": REPO}}, format="json").status_code == 400


def test_source_names_with_dots_route(api):
    assert api.put(URL + "team.registry/", {"registry": {"repo": REPO}}, format="json").status_code == 201
    assert api.get(URL + "team.registry/").json()["name"] == "team.registry"


def test_credentials_never_leave_the_portal(api, secret, caplog, make_source):
    caplog.set_level(logging.DEBUG)
    make_source(name="used")
    responses = [
        api.post(URL, {"name": "dev", "registry": {"repo": REPO, "dockerCfg": secret}}, format="json"),
        api.put(URL + "dev/", {"registry": {"repo": REPO, "dockerCfg": secret + "="}}, format="json"),
        api.patch(URL + "dev/", {"registry": {"dockerCfg": make_docker_cfg("registry.example.com", "r", "other")}},
                  format="json"),
        api.post(URL, {"name": "bad", "registry": {"repo": "registry.example.com/x",
                                                   "dockerCfg": make_docker_cfg("elsewhere.io", "r", SECRET_PASSWORD)}},
                 format="json"),
        api.get(URL), api.get(URL + "dev/"), api.get("/api/v1/audit/"),
        api.get(URL, HTTP_ACCEPT="text/html"), api.get(URL + "dev/", HTTP_ACCEPT="text/html"),
    ]
    for response in responses:
        text = response.content.decode()
        assert secret not in text and SECRET_PASSWORD not in text and "cm9ib3Q6" not in text
    for change in ObjectChange.objects.all():
        assert SECRET_PASSWORD not in str(change.before) + str(change.after) and secret not in str(change.after)
    assert secret not in caplog.text and SECRET_PASSWORD not in caplog.text
