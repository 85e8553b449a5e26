"""The admin: every list and form renders; edits go through the services; history is read-only."""

import pytest
from django.urls import reverse

from overrides.models import ApiToken, DigestObservation, ModulePullOverride, ModuleSource, ObjectChange
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db

MODELS = ["modulesource", "modulepulloverride", "digestobservation", "objectchange", "apitoken"]


@pytest.fixture
def seeded(make_override, admin_user):
    override = make_override()
    DigestObservation.objects.create(override=override, digest="sha256:" + "a" * 64, image_ref=override.image_ref,
                                     origin="registry", observed_at=override.created_at)
    token = ApiToken(user=admin_user)
    token.set_key(ApiToken.generate())
    token.save()
    return override


@pytest.mark.parametrize("model", MODELS)
def test_changelist_and_forms_render(client, admin_user, seeded, model):
    client.force_login(admin_user)
    assert client.get(reverse(f"admin:overrides_{model}_changelist")).status_code == 200
    obj = {"modulesource": ModuleSource, "modulepulloverride": ModulePullOverride, "digestobservation":
           DigestObservation, "objectchange": ObjectChange, "apitoken": ApiToken}[model].objects.first()
    assert client.get(reverse(f"admin:overrides_{model}_change", args=[obj.pk])).status_code == 200
    add = client.get(reverse(f"admin:overrides_{model}_add"))
    assert add.status_code == (403 if model in ("digestobservation", "objectchange") else 200)


@pytest.mark.parametrize("model", ["digestobservation", "objectchange"])
def test_history_is_read_only(client, admin_user, seeded, model):
    client.force_login(admin_user)
    cls = DigestObservation if model == "digestobservation" else ObjectChange
    obj = cls.objects.first()
    count = cls.objects.count()
    assert client.post(reverse(f"admin:overrides_{model}_change", args=[obj.pk]), {}).status_code == 403
    assert client.post(reverse(f"admin:overrides_{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse(f"admin:overrides_{model}_add"), {}).status_code == 403
    assert cls.objects.count() == count


def test_admin_create_and_edit_go_through_services(client, admin_user, make_source):
    make_source()
    client.force_login(admin_user)
    url = reverse("admin:overrides_modulepulloverride_add")
    response = client.post(url, {"name": "echo", "source": ModuleSource.objects.get().pk, "image_tag": "pr9",
                                 "scan_interval": "30s"})
    assert response.status_code == 302, response.content
    override = ModulePullOverride.objects.get(name="echo")
    [change] = ObjectChange.objects.filter(object_type="modulepulloverride")
    assert change.context == "admin" and change.user_name == "admin" and change.action == "create"
    change_url = reverse("admin:overrides_modulepulloverride_change", args=[override.pk])
    response = client.post(change_url, {"source": override.source_id, "image_tag": "bad tag", "scan_interval": "1d"})
    assert response.status_code == 200 and b"not a valid image tag" in response.content
    page = client.get(change_url).content.decode()
    assert "Digest history" in page and "Audit records" in page


def test_admin_never_shows_credentials(client, admin_user, make_source):
    secret = make_docker_cfg("registry.example.com", "robot", "hidden-pa55")
    source = make_source(docker_cfg=secret)
    client.force_login(admin_user)
    for url in (reverse("admin:overrides_modulesource_changelist"),
                reverse("admin:overrides_modulesource_change", args=[source.pk]),
                reverse("admin:overrides_objectchange_changelist")):
        body = client.get(url).content.decode()
        assert secret not in body and "hidden-pa55" not in body
    assert "set" in client.get(reverse("admin:overrides_modulesource_changelist")).content.decode()
    # An empty replace field keeps the stored credential.
    response = client.post(reverse("admin:overrides_modulesource_change", args=[source.pk]),
                           {"repo": source.repo, "scheme": "HTTP", "ca": "", "release_channel": ""})
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.docker_cfg == secret and source.scheme == "HTTP"


def test_admin_token_shown_once_and_stored_hashed(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("admin:overrides_apitoken_add"),
                           {"user": admin_user.pk, "description": "ci", "write_enabled": "on"})
    assert response.status_code == 200
    token = ApiToken.objects.get()
    plaintext = response.context["plaintext"]
    assert plaintext.startswith("mpo_") and plaintext in response.content.decode()
    assert token.key_hash != plaintext and plaintext not in str(ApiToken.objects.values().get())


def test_a_change_the_service_refuses_stays_on_the_form_and_saves_nothing(client, admin_user, make_override):
    override = make_override()
    client.force_login(admin_user)
    changes = ObjectChange.objects.count()
    add = reverse("admin:overrides_modulepulloverride_add")
    response = client.post(add, {"name": "echo", "source": override.source_id, "image_tag": "pr9",
                                 "scan_interval": "30s"})
    assert response.status_code == 200  # the form again, not Django's "added" redirect
    page = response.content.decode().replace("&quot;", '"')
    assert "already exists" in page and "was added successfully" not in page
    response = client.post(reverse("admin:overrides_modulesource_add"),
                           {"name": "deckhouse", "repo": "registry.example.com/x", "scheme": "HTTPS"})
    assert response.status_code == 200 and "created by Deckhouse itself" in response.content.decode().replace(
        "&quot;", '"')
    assert ObjectChange.objects.count() == changes
    assert ModulePullOverride.objects.count() == 1 and not ModuleSource.objects.filter(name="deckhouse").exists()


def test_a_scan_interval_of_thousands_of_digits_is_a_form_error(client, admin_user, make_override):
    override = make_override()
    client.force_login(admin_user)
    url = reverse("admin:overrides_modulepulloverride_change", args=[override.pk])
    response = client.post(url, {"source": override.source_id, "image_tag": "main", "scan_interval": "9" * 5000 + "s"})
    assert response.status_code == 200 and b"errorlist" in response.content
    override.refresh_from_db()
    assert override.scan_interval == "15s"
