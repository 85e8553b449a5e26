"""The web UI's side of lifetime and ownership: owner, reason and expiry on the dashboard and the override page,
the "mine" and "expiring soon" filters, and the "Take over" confirmation when someone else holds an override."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from overrides import services
from overrides.audit import Actor
from overrides.models import ModulePullOverride, NotificationEvent, ObjectChange

pytestmark = pytest.mark.django_db


def _user(django_user_model, name):
    user = django_user_model.objects.create_user(username=name, password="unused-pass-123")
    perms = Permission.objects.filter(content_type__app_label="overrides").exclude(codename="keep_override_forever")
    user.user_permissions.set(perms)
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def alice(django_user_model):
    return _user(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model):
    return _user(django_user_model, "bob")


def _own(user, name, source, **kw):
    return services.override_create(actor=Actor(context="web", user=user), name=name, source=source,
                                    image_tag="main", **kw)


def test_create_form_sets_reason_and_expiry_and_refuses_bad_expiry(alice, make_source):
    make_source(name="dev")
    user, client = alice
    bad = client.post("/new/override/", {"source": "dev", "name": "echo", "image_tag": "main", "expires": "soonish"})
    assert bad.status_code == 200 and "is not a duration" in bad.content.decode()
    never = client.post("/new/override/", {"source": "dev", "name": "echo", "image_tag": "main", "expires": "never"})
    assert never.status_code == 200 and "permission" in never.content.decode()  # not allowed to keep it forever
    ok = client.post("/new/override/", {"source": "dev", "name": "echo", "image_tag": "main", "expires": "2d",
                                        "reason": "https://git.example.com/mr/7"})
    assert ok.status_code == 302
    override = ModulePullOverride.objects.get(name="echo")
    assert override.owner == user and override.reason == "https://git.example.com/mr/7"
    page = client.get("/overrides/echo/").content.decode()
    assert "alice" in page and "git.example.com/mr/7" in page and 'id="expires"' in page
    assert 'value="https://git.example.com/mr/7"' in client.get("/overrides/echo/edit/").content.decode()


def test_dashboard_shows_owner_and_filters_mine_and_expiring(alice, bob, make_source):
    source = make_source(name="dev")
    alice_user, client = alice
    bob_user, _ = bob
    _own(alice_user, "mine-later", source, reason="long test")
    _own(bob_user, "bobs", source)
    soon = _own(alice_user, "mine-soon", source)
    ModulePullOverride.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(hours=3))
    page = client.get("/").content.decode()
    assert "long test" in page and "bob" in page
    mine = client.get("/dashboard/rows/?mine=on").content.decode()
    assert "mine-later" in mine and "mine-soon" in mine and "bobs" not in mine
    expiring = client.get("/dashboard/rows/?expiring=on").content.decode()
    assert "mine-soon" in expiring and "mine-later" not in expiring and "bobs" not in expiring


def test_someone_elses_override_asks_for_a_take_over(alice, bob, make_source):
    source = make_source(name="dev")
    alice_user, _ = alice
    bob_user, bob_client = bob
    _own(alice_user, "echo", source, reason="MR !3")
    refused = bob_client.post("/overrides/echo/edit/", {"source": "dev", "image_tag": "pr9", "scan_interval": "15s"})
    assert refused.status_code == 409
    text = refused.content.decode()
    assert "alice" in text and "MR !3" in text and 'name="take_over" value="1"' in text and 'value="pr9"' in text
    assert ModulePullOverride.objects.get(name="echo").image_tag == "main"
    taken = bob_client.post("/overrides/echo/edit/", {"source": "dev", "image_tag": "pr9", "scan_interval": "15s",
                                                      "take_over": "1"})
    assert taken.status_code == 302
    override = ModulePullOverride.objects.get(name="echo")
    assert override.owner == bob_user and override.image_tag == "pr9"
    assert ObjectChange.objects.filter(action="take-over", user_name="bob").exists()
    assert NotificationEvent.objects.filter(event_type="override.taken-over").count() == 1
    _, alice_client = alice
    assert alice_client.post("/overrides/echo/renew/", {"force": "0"}).status_code == 409
    assert alice_client.post("/overrides/echo/delete/").status_code == 409
    confirm = alice_client.get("/overrides/echo/take-over/")
    assert confirm.status_code == 200 and "Take over" in confirm.content.decode()
    assert alice_client.post("/overrides/echo/take-over/").status_code == 302
    assert ModulePullOverride.objects.get(name="echo").owner == alice_user
