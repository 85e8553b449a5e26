"""Override lifetime and ownership: owner, reason, expiry from the TTL, 409 for someone else's override,
take-over, claims of imported CRs, and the scheduler's expiry through the delete service."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from overrides import expiry, lifetime, services
from overrides.audit import Actor
from overrides.models import ModulePullOverride, NotificationEvent, ObjectChange
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

URL = "/api/v1/overrides/"


@pytest.fixture
def source(make_source):
    return make_source(name="dev", repo="registry.example.com/deckhouse/modules")


@pytest.fixture
def other_user(django_user_model):
    user = django_user_model.objects.create_user(username="bob", password="unused-pass-123", email="bob@example.com")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="overrides", codename__in=API_PERMS))
    return user


@pytest.fixture
def bob(other_user):
    return client_with(make_token(other_user))


def put(client, name="echo", **kw):
    return client.put(URL + f"{name}/", {"source": "dev", "imageTag": "main", **kw}, format="json")


def test_create_sets_owner_reason_and_default_expiry(api, source, settings):
    settings.PORTAL_OVERRIDE_TTL = timedelta(days=2)
    before = timezone.now()
    data = put(api, reason="MR !42").json()
    assert data["owner"] == "ci-bot" and data["reason"] == "MR !42" and data["ownedSince"]
    override = ModulePullOverride.objects.get(name="echo")
    assert before + timedelta(days=2) <= override.expires_at <= timezone.now() + timedelta(days=2)
    create = ObjectChange.objects.get(action="create", object_type="modulepulloverride")
    assert create.after["owner"] == "ci-bot" and create.after["expiresAt"] == override.expires_at.isoformat()


def test_owner_upsert_and_renew_move_the_expiry_forward(api, source):
    put(api)
    override = ModulePullOverride.objects.get(name="echo")
    soon = timezone.now() + timedelta(hours=1)
    ModulePullOverride.objects.filter(pk=override.pk).update(expires_at=soon, reminded_at=timezone.now())
    assert put(api).status_code == 200  # a repeat that changes nothing still moves the expiry
    override.refresh_from_db()
    assert override.expires_at > soon + timedelta(days=6) and override.reminded_at is None
    ModulePullOverride.objects.filter(pk=override.pk).update(expires_at=soon)
    assert api.post(URL + "echo/renew/", {}, format="json").status_code == 202
    override.refresh_from_db()
    assert override.expires_at > soon + timedelta(days=6)


def test_expiry_set_explicitly_as_duration_date_or_never(api, source, ci_user):
    response = put(api, expiresAt="3h")
    expires = ModulePullOverride.objects.get(name="echo").expires_at
    assert response.status_code == 201
    assert timedelta(hours=2, minutes=59) < expires - timezone.now() <= timedelta(hours=3)
    later = (timezone.now() + timedelta(days=20)).replace(microsecond=0)
    response = api.patch(URL + "echo/", {"expiresAt": later.isoformat()}, format="json")
    assert response.status_code == 200 and ModulePullOverride.objects.get(name="echo").expires_at == later
    assert ObjectChange.objects.filter(action="update", message="lifetime changed").count() == 1
    refused = api.patch(URL + "echo/", {"expiresAt": "never"}, format="json")
    assert refused.status_code == 400 and "permission" in refused.json()["expiresAt"][0]
    for bad in ("yesterday", "2000-01-01T00:00:00Z", "0s"):
        answer = api.patch(URL + "echo/", {"expiresAt": bad}, format="json")
        assert answer.status_code == 400 and "expiresAt" in answer.json(), bad
    ci_user.user_permissions.add(Permission.objects.get(codename="keep_override_forever"))
    forever = client_with(make_token(ci_user))
    response = forever.patch(URL + "echo/", {"expiresAt": "never"}, format="json")
    assert response.status_code == 200 and response.json()["expiresAt"] is None
    put(forever)  # the owner's upsert keeps "never"
    assert ModulePullOverride.objects.get(name="echo").expires_at is None


def test_someone_elses_override_is_409_with_owner_reason_and_since(api, bob, source):
    put(api, reason="testing MR !7")
    for response in (put(bob, imageTag="pr9"), put(bob),
                     bob.patch(URL + "echo/", {"imageTag": "pr9"}, format="json"),
                     bob.post(URL + "echo/renew/", {}, format="json"), bob.delete(URL + "echo/")):
        assert response.status_code == 409, response.content
        data = response.json()
        assert data["owner"] == "ci-bot" and data["reason"] == "testing MR !7" and data["ownedSince"]
        assert "ci-bot" in data["detail"] and data["expiresAt"]
    override = ModulePullOverride.objects.get(name="echo")
    assert override.image_tag == "main" and override.owner.username == "ci-bot"


def test_take_over_makes_the_caller_owner_audits_and_notifies_the_previous_owner(api, bob, source, ci_user):
    put(api)
    response = put(bob, imageTag="pr9", takeOver=True)
    assert response.status_code == 200 and response.json()["owner"] == "bob"
    override = ModulePullOverride.objects.get(name="echo")
    assert override.image_tag == "pr9"
    take = ObjectChange.objects.get(action="take-over")
    assert take.user_name == "bob" and take.before["owner"] == "ci-bot" and take.after["owner"] == "bob"
    event = NotificationEvent.objects.get(event_type="override.taken-over")
    assert event.payload["previous_owner_id"] == ci_user.pk and event.payload["previousOwner"] == "ci-bot"
    assert put(api, imageTag="pr10").status_code == 409  # now ci-bot is the other one
    put(api, name="other")
    assert [o["name"] for o in api.get(URL, {"mine": "true"}).json()["results"]] == ["other"]
    assert [o["name"] for o in bob.get(URL, {"mine": "true"}).json()["results"]] == ["echo"]
    assert [o["name"] for o in api.get(URL, {"owner": "bob"}).json()["results"]] == ["echo"]
    ModulePullOverride.objects.filter(name="other").update(expires_at=timezone.now() + timedelta(hours=1))
    assert [o["name"] for o in api.get(URL, {"expiringSoon": "true"}).json()["results"]] == ["other"]
    assert api.delete(URL + "echo/?takeOver=true").status_code == 204


def test_admins_and_system_actors(api, source, admin_user, actor):
    put(api)
    override = ModulePullOverride.objects.get(name="echo")
    with pytest.raises(lifetime.OwnershipConflict):
        services.override_update(actor=Actor(context="web", user=admin_user), override=override, image_tag="x1")
    services.override_update(actor=Actor(context="web", user=admin_user), override=override, image_tag="x1",
                             take_over=True)
    services.override_renew(actor=actor, override=override)  # a command: no ownership rules
    assert ModulePullOverride.objects.get(name="echo").owner == admin_user


def test_imported_override_has_no_owner_until_claimed(api, source, settings):
    from overrides.cluster import services as cluster_services
    from overrides.cluster.services import ClusterIdentity, OverrideSpec

    spec = OverrideSpec(image_tag="main", scan_interval="15s", rollback=False, source="dev", note="")
    imported = cluster_services.override_import(name="echo", spec=spec, source=source,
                                                identity=ClusterIdentity(uid="u1", resource_version="1"))
    assert imported.owner is None and imported.expires_at is None
    assert not expiry.work_due(timezone.now() + timedelta(days=400))
    response = api.post(URL + "echo/renew/", {}, format="json")
    assert response.status_code == 202 and response.json()["owner"] == "ci-bot"
    assert ModulePullOverride.objects.get(name="echo").expires_at is not None
    assert ObjectChange.objects.filter(action="claim", user_name="ci-bot").count() == 1


def test_expiry_deletes_through_the_delete_service_and_reminds_once(make_override, source, settings):
    settings.PORTAL_OVERRIDE_REMINDER = timedelta(hours=24)
    keep = make_override(name="keep", source=source)
    soon = make_override(name="soon", source=source, rollback=True)
    gone = make_override(name="gone", source=source)
    now = timezone.now()
    ModulePullOverride.objects.filter(pk=soon.pk).update(expires_at=now + timedelta(hours=2))
    ModulePullOverride.objects.filter(pk=gone.pk).update(expires_at=now - timedelta(seconds=1))
    assert expiry.work_due(now)
    assert expiry.expire_due(now) == {"expired": 1, "reminded": 1}
    assert expiry.expire_due(now) == {"expired": 0, "reminded": 0}  # once
    assert not expiry.work_due(now)
    assert ModulePullOverride.all_objects.get(pk=gone.pk).is_deleted
    assert not ModulePullOverride.all_objects.get(pk=keep.pk).is_deleted
    delete = ObjectChange.objects.get(action="delete")
    assert delete.context == "scheduler" and delete.message == "expired" and delete.object_id == gone.pk
    kinds = set(NotificationEvent.objects.values_list("event_type", "override_name"))
    assert {("override.expired", "gone"), ("override.expiring", "soon")} <= kinds
    assert ("override.deleted", "gone") not in kinds


@pytest.mark.parametrize("name, value, words", [
    ("PORTAL_OVERRIDE_TTL", "a week", "is not a duration"),
    ("PORTAL_OVERRIDE_REMINDER", "0s", "is zero"),
    ("PORTAL_NOTIFY_RETRIES", "many", "must be a positive whole number"),
    ("PORTAL_NOTIFY_TIMEOUT", "-1", "must be a positive number"),
])
def test_bad_lifetime_and_notification_settings_stop_the_start_in_one_line(tmp_path, name, value, words):
    import os
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env.update({"PORTAL_VAR_DIR": str(tmp_path), "PORTAL_SECRET_KEY": "x" * 50,
                "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(), name: value})
    result = subprocess.run([sys.executable, "manage.py", "check"], capture_output=True, text=True, timeout=60,
                            env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode != 0 and name in result.stderr and words in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
