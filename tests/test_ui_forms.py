"""Web UI writes: override create/edit/delete, source create/edit/delete/discover, the suggestion endpoints.

Every write goes through the services (audit context "web"); errors are shown next to the field, in words,
with what the user typed kept (except a credential, which is never echoed back)."""

import pytest
from django.test import Client

from overrides import services
from overrides.models import ModulePullOverride, ModuleSource, ObjectChange
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db


def test_create_override_through_the_form(admin_client, make_source):
    source = make_source()
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["echo", "hello"])
    form = admin_client.get("/new/override/?source=test&name=hello").content.decode()
    assert '<datalist id="module-suggestions"><option value="echo"><option value="hello"></datalist>' in form
    assert 'value="hello"' in form and 'list="tag-suggestions"' in form
    response = admin_client.post("/new/override/", {"source": "test", "name": "hello", "image_tag": "pr42",
                                                     "scan_interval": "1m", "rollback": "on"})
    assert response.status_code == 302 and response["Location"] == "/overrides/hello/"
    override = ModulePullOverride.objects.get(name="hello")
    assert (override.image_tag, override.scan_interval, override.rollback) == ("pr42", "1m", True)
    change = ObjectChange.objects.get(object_type="modulepulloverride", action="create")
    assert change.context == "web" and change.user_name == "admin"
    assert "created" in admin_client.get("/overrides/hello/").content.decode()


@pytest.mark.parametrize("data, field, words", [
    ({"name": "", "image_tag": "main"}, "name", "Enter the name of the module to override."),
    ({"name": "Bad_Name", "image_tag": "main"}, "name", "is not a valid module name"),
    ({"name": "ghost", "image_tag": "main"}, "name", 'offer a module "ghost"'),
    ({"name": "echo", "image_tag": "bad tag!"}, "image_tag", "is not a valid image tag"),
    ({"name": "echo", "image_tag": "main", "scan_interval": "0s"}, "scan_interval", "Use at least 1s"),
    ({"name": "echo", "image_tag": "main", "scan_interval": "5 minutes"}, "scan_interval", "not a valid scan"),
    ({"name": "echo", "image_tag": "main", "scan_interval": "9" * 5000 + "s"}, "scan_interval", "at most 32"),
    ({"name": "echo", "image_tag": "main", "source": "missing"}, "source", "Choose one of the sources listed."),
])
def test_create_errors_are_inline_and_keep_the_values(admin_client, make_source, data, field, words):
    source = make_source()
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["echo"])
    post = {"source": "test", "scan_interval": "15s", **data}
    response = admin_client.post("/new/override/", post)
    assert response.status_code == 200
    html = response.content.decode().replace("&quot;", '"')
    assert f'id="id_{field}_error"' in html and words in html
    assert 'aria-invalid="true"' in html
    for value in (data.get("name"), data.get("image_tag"), data.get("scan_interval")):
        if value:
            assert f'value="{value}"' in html
    assert not ModulePullOverride.objects.exists()


def test_create_for_an_already_overridden_module(admin_client, make_override):
    make_override()
    response = admin_client.post("/new/override/", {"source": "test", "name": "echo", "image_tag": "x"})
    assert 'Module "echo" is already overridden.' in response.content.decode().replace("&quot;", '"')


def test_edit_override_keeps_name_and_shows_errors(admin_client, make_override):
    make_override()
    form = admin_client.get("/overrides/echo/edit/").content.decode()
    assert 'value="main"' in form and "disabled" in form
    bad = admin_client.post("/overrides/echo/edit/", {"source": "test", "name": "other", "image_tag": "no good",
                                                      "scan_interval": "15s"})
    assert bad.status_code == 200 and 'value="no good"' in bad.content.decode()
    assert "not a valid image tag" in bad.content.decode()
    good = admin_client.post("/overrides/echo/edit/", {"source": "test", "name": "other", "image_tag": "pr9",
                                                       "scan_interval": "30s"})
    assert good.status_code == 302
    override = ModulePullOverride.objects.get()
    assert (override.name, override.image_tag, override.scan_interval) == ("echo", "pr9", "30s")
    change = ObjectChange.objects.get(action="update")
    assert change.before["imageTag"] == "main" and change.after["imageTag"] == "pr9" and change.context == "web"
    # Saving unchanged values writes nothing.
    admin_client.post("/overrides/echo/edit/", {"source": "test", "image_tag": "pr9", "scan_interval": "30s"})
    assert ObjectChange.objects.filter(action="update").count() == 1


@pytest.mark.parametrize("rollback, effect", [
    (False, "the module keeps running the developer build until a release replaces it"),
    (True, "the module is rolled back to the released version at once"),
])
def test_delete_confirmation_says_what_happens(admin_client, make_override, rollback, effect):
    make_override(rollback=rollback)
    page = admin_client.get("/overrides/echo/delete/").content.decode()
    assert effect in page and 'method="post"' in page
    assert ModulePullOverride.objects.filter(name="echo").exists()
    response = admin_client.post("/overrides/echo/delete/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not ModulePullOverride.objects.filter(name="echo").exists()
    assert ObjectChange.objects.get(action="delete").context == "web"
    assert effect in admin_client.get("/").content.decode()


def test_delete_needs_csrf(admin_user, make_override):
    make_override()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/overrides/echo/delete/")
    assert response.status_code == 403 and b"The form expired" in response.content
    assert ModulePullOverride.objects.filter(name="echo").exists()


def test_source_create_edit_with_write_only_credentials(admin_client):
    secret = make_docker_cfg("registry.example.com", "robot", "hidden-pa55")
    response = admin_client.post("/new/source/", {"name": "corp", "repo": "registry.example.com/modules",
                                                   "scheme": "HTTPS", "new_docker_cfg": secret})
    assert response.status_code == 302 and response["Location"] == "/sources/corp/"
    source = ModuleSource.objects.get(name="corp")
    assert source.docker_cfg == secret
    for url in ("/sources/", "/sources/corp/", "/sources/corp/edit/", "/audit/"):
        html = admin_client.get(url).content.decode()
        assert secret not in html and "hidden-pa55" not in html
    assert "set" in admin_client.get("/sources/corp/").content.decode()

    # An empty credential field keeps it; the checkbox clears it; a bad one is refused next to the field.
    admin_client.post("/sources/corp/edit/", {"repo": "registry.example.com/modules", "scheme": "HTTP"})
    source.refresh_from_db()
    assert source.docker_cfg == secret and source.scheme == "HTTP"
    bad_secret = make_docker_cfg("elsewhere.example.com", "robot", "other-pa55")
    bad = admin_client.post("/sources/corp/edit/", {"repo": "registry.example.com/modules", "scheme": "HTTP",
                                                    "new_docker_cfg": bad_secret})
    html = bad.content.decode().replace("&quot;", '"')
    assert 'id="id_new_docker_cfg_error"' in html and "credentials not found in the dockerCfg" in html
    assert bad_secret not in html and "other-pa55" not in html
    admin_client.post("/sources/corp/edit/", {"repo": "registry.example.com/modules", "scheme": "HTTP",
                                              "clear_docker_cfg": "on"})
    source.refresh_from_db()
    assert source.docker_cfg == ""
    contexts = set(ObjectChange.objects.filter(object_type="modulesource").values_list("context", flat=True))
    assert contexts == {"web"}


def test_source_form_errors_in_words(admin_client, make_source):
    make_source()
    response = admin_client.post("/new/source/", {"name": "corp", "repo": "https://registry.example.com/x",
                                                   "scheme": "HTTPS"})
    html = response.content.decode().replace("&quot;", '"')
    assert 'id="id_repo_error"' in html and "Write the repository without a scheme" in html
    assert 'value="https://registry.example.com/x"' in html and 'value="corp"' in html
    response = admin_client.post("/new/source/", {"name": "test", "repo": "registry.example.com/x",
                                                   "scheme": "HTTPS"})
    html = response.content.decode().replace("&quot;", '"')
    assert 'id="id_name_error"' in html and 'A source named "test" already exists.' in html


def test_source_page_lists_modules_and_which_are_overridden(admin_client, make_source, make_override):
    source = make_source()
    ModuleSource.objects.filter(pk=source.pk).update(
        discovered_modules=["echo", "hello", "world"],
        status_modules=[{"name": "world", "policy": "", "overridden": True, "error": ""},
                        {"name": "cluster-only", "policy": "stable", "overridden": False, "error": "bad"}])
    make_override(name="echo", source=source)
    html = admin_client.get("/sources/test/").content.decode()
    assert "Modules (4, 2 overridden)" in html
    assert '<a href="/overrides/echo/">yes</a>' in html
    assert "yes (in the cluster)" in html
    assert "/new/override/?source=test&amp;name=hello" in html
    assert "not set (anonymous)" in html


def test_source_delete_refused_while_used_and_builtin_read_only(admin_client, make_override, actor):
    override = make_override()
    page = admin_client.get("/sources/test/delete/").content.decode()
    assert "cannot be deleted while overrides use it" in page and 'href="/overrides/echo/"' in page
    response = admin_client.post("/sources/test/delete/", follow=True)
    assert "used by the overrides echo" in response.content.decode()
    services.override_delete(actor=actor, override=override)
    assert admin_client.post("/sources/test/delete/").status_code == 302
    assert not ModuleSource.objects.filter(name="test").exists()

    ModuleSource.objects.create(name="deckhouse", repo="registry.deckhouse.io/deckhouse/ce/modules")
    page = admin_client.get("/sources/deckhouse/").content.decode()
    assert "managed by Deckhouse itself" in page and ">Edit<" not in page and ">Delete<" not in page
    assert admin_client.get("/sources/deckhouse/edit/").status_code == 403
    assert admin_client.post("/sources/deckhouse/edit/", {"repo": "evil.example.com/x", "scheme": "HTTP"}
                             ).status_code == 403
    assert admin_client.post("/sources/deckhouse/delete/").status_code == 403
    assert ModuleSource.objects.get(name="deckhouse").repo == "registry.deckhouse.io/deckhouse/ce/modules"


def test_check_now_enqueues_discovery(admin_client, make_source, monkeypatch, django_capture_on_commit_callbacks):
    source = make_source()
    queued = []
    monkeypatch.setattr("overrides.enqueue.async_task", lambda func, *args, **kw: queued.append((func, args)))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/sources/test/discover/")
    assert response.status_code == 302
    assert queued == [("overrides.tasks.discover_source", (source.pk,))]
    assert admin_client.get("/sources/test/discover/").status_code == 405


def test_module_suggestions_endpoint(admin_client, make_source):
    source = make_source()
    ModuleSource.objects.filter(pk=source.pk).update(discovered_modules=["b", "a"])
    assert admin_client.get("/sources/test/modules/").json() == {"modules": ["a", "b"], "error": None}
    assert admin_client.get("/sources/nope/modules/").status_code == 404


def test_tag_suggestions_from_the_real_registry(admin_client, registry):
    module = registry.unique("ui")
    registry.push(module, "main", b"one")
    registry.push(module, "pr-1", b"two")
    services.source_create(actor=services.Actor.system("cli"), name="local", repo=registry.repo, scheme="HTTP")
    data = admin_client.get(f"/sources/local/tags/?module={module}").json()
    assert data["error"] is None and set(data["tags"]) == {"main", "pr-1"}
    missing = admin_client.get("/sources/local/tags/?module=no-such-module").json()
    assert missing["tags"] == [] and "not found" in missing["error"]
    assert admin_client.get("/sources/local/tags/?module=Bad%20Name").json()["error"]
    assert admin_client.get("/sources/local/tags/").status_code == 400
    assert admin_client.get("/sources/nope/tags/?module=x").status_code == 404


def test_tag_suggestions_when_the_registry_is_down(admin_client, registry_factory):
    down = registry_factory()
    services.source_create(actor=services.Actor.system("cli"), name="down", repo=down.repo, scheme="HTTP")
    down.stop()
    data = admin_client.get("/sources/down/tags/?module=echo").json()
    assert data["tags"] == [] and data["error"]
