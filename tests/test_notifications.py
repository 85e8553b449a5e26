"""Notifications against real receivers: the generic webhook's HMAC, Slack and Teams bodies, e-mail through a real
SMTP server, retries with backoff (500 then 200, a hanging receiver), 202 as success, every attempt recorded,
subscriptions, the owner's default, no spam, and the channel's secrets kept out of the database and the pages."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from overrides import services
from overrides.audit import Actor
from overrides.models import (
    ClusterModule,
    Delivery,
    DeliveryAttempt,
    ModuleHealth,
    ModulePullOverride,
    NotificationChannel,
    NotificationEvent,
    ObjectChange,
)
from overrides.notifications import delivery, events
from overrides.notifications import services as channel_services

pytestmark = pytest.mark.django_db
SECRET = "hmac-secret-value-42"


def observe(override, message: str, digest: str = "", module: str = "") -> int:
    """What a read-back would mirror: the MPO's status and (for `module` "ready" or "failed") the Module's outcome
    on `digest`; then the rollout events the verdict gives."""
    now = timezone.now()
    ModulePullOverride.objects.filter(pk=override.pk).update(
        sync_state="synced", synced_at=now, cluster_seen_at=now, status_image_digest=digest, status_message=message,
        registry_digest=digest or F("registry_digest"), registry_checked_at=now)
    outcome = {"ready": {"health": ModuleHealth.READY, "phase": "Ready", "ready_digest": digest, "ready_at": now},
               "failed": {"health": ModuleHealth.FAILED, "phase": "Error", "failed_digest": digest, "failed_at": now,
                          "failure": "HookError: boom"}}.get(module, {"phase": "Reconciling"})
    ClusterModule.objects.update_or_create(override=override, defaults={
        "digest": digest, "digest_seen_at": now, "api_version": "v1alpha1", "health_seen_at": now, "read_at": now,
        "health": "", "ready_digest": "", "failed_digest": "", **outcome})
    return events.emit_verdict_transitions([override.pk])


@pytest.fixture
def alice(django_user_model):
    user = django_user_model.objects.create_user(username="alice", password="unused-pass-123",
                                                 email="alice@example.com")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="overrides",
                                                        codename__endswith="modulepulloverride"))
    return user


def channel(user, target, kind="webhook", secret="", is_global=False, **subscription):
    sub = {"event_types": [], "scope": "all", "source": None, "module_patterns": "", **subscription}
    return channel_services.channel_create(user=user, name=f"{kind} channel", kind=kind, target=target,
                                           secret=secret, is_global=is_global, subscription=sub)


def deliver_all() -> list[str]:
    """Fan out what was emitted and make one attempt of each pending delivery (what the tasks do)."""
    delivery.fan_out()
    return [delivery.deliver(pk) for pk in Delivery.objects.filter(state="pending").values_list("pk", flat=True)]


def test_generic_webhook_is_signed_like_flux_generic_hmac(receiver, admin_user, make_override):
    channel(admin_user, receiver.url, secret=SECRET, is_global=True)
    make_override(name="echo")
    assert deliver_all() == ["succeeded"]
    [(headers, body)] = receiver.wait(1)
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-signature"] == expected and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["type"] == "override.created" and data["override"] == "echo" and "echo" in data["summary"]
    assert "owner_id" not in data["details"]
    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.status_code == 200 and attempt.error == ""


def test_500_then_200_is_retried_with_backoff_and_202_is_success(receiver_factory, admin_user, make_override,
                                                                  settings):
    settings.PORTAL_NOTIFY_BACKOFF = 2
    flaky, accepting = receiver_factory(500, 200), receiver_factory(202)
    channel(admin_user, flaky.url, is_global=True)
    channel(admin_user, accepting.url, is_global=True)
    make_override(name="echo")
    assert sorted(deliver_all()) == ["pending", "succeeded"]
    retry = Delivery.objects.get(state="pending")
    assert retry.attempts == 1 and retry.next_attempt_at > timezone.now() and "HTTP 500" in retry.last_error
    failing = NotificationChannel.objects.get(pk=retry.channel_id)
    assert failing.failures_in_a_row == 1 and "500" in failing.last_error
    assert delivery.enqueue_due(timezone.now()) == 0  # not due yet
    assert delivery.deliver(retry.pk) == "done"  # nor taken by a task before it is due
    Delivery.objects.filter(pk=retry.pk).update(next_attempt_at=F("next_attempt_at") - timedelta(seconds=3))
    assert delivery.enqueue_due(timezone.now()) == 1
    assert delivery.deliver(retry.pk) == "succeeded"
    assert [a.status_code for a in DeliveryAttempt.objects.filter(delivery=retry).order_by("at")] == [500, 200]
    assert NotificationChannel.objects.get(pk=retry.channel_id).failures_in_a_row == 0
    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/notifications/deliveries/").content.decode()
    assert "HTTP 500" in page and "succeeded" in page and "secret-path-123" not in page
    assert DeliveryAttempt.objects.get(delivery__channel__target_hint__contains=str(accepting.server.server_port)
                                       ).status_code == 202


def test_a_hanging_receiver_times_out_retries_and_gives_up(receiver_factory, admin_user, make_override, settings):
    settings.PORTAL_NOTIFY_TIMEOUT, settings.PORTAL_NOTIFY_RETRIES = 0.5, 2
    hanging = receiver_factory(("hang", 3))
    channel(admin_user, hanging.url, is_global=True)
    make_override(name="echo")
    assert deliver_all() == ["pending"]
    [pk] = Delivery.objects.values_list("pk", flat=True)
    Delivery.objects.filter(pk=pk).update(next_attempt_at=timezone.now())  # its backoff has passed
    assert delivery.enqueue_due(timezone.now()) == 1
    assert delivery.deliver(pk) == "failed"  # the second and last attempt
    assert delivery.deliver(pk) == "done"
    attempts = list(DeliveryAttempt.objects.filter(delivery_id=pk))
    assert len(attempts) == 2 and all("no answer within 0.5s" in a.error for a in attempts)
    assert all(a.status_code is None for a in attempts) and Delivery.objects.get(pk=pk).state == "failed"
    assert hanging.url not in str(list(DeliveryAttempt.objects.values_list("error", flat=True)))


def test_a_4xx_fails_at_once(receiver_factory, admin_user, make_override):
    channel(admin_user, receiver_factory(404).url, is_global=True)
    make_override(name="echo")
    assert deliver_all() == ["failed"]


def test_slack_and_teams_bodies(receiver_factory, admin_user, make_override):
    slack, teams = receiver_factory(200), receiver_factory(202)
    channel(admin_user, slack.url, kind="slack", is_global=True)
    channel(admin_user, teams.url, kind="teams", is_global=True)
    make_override(name="echo")
    assert deliver_all() == ["succeeded", "succeeded"]
    slack_body = json.loads(slack.wait(1)[0][1])
    assert set(slack_body) == {"text"} and "echo" in slack_body["text"]
    teams_body = json.loads(teams.wait(1)[0][1])
    [attachment] = teams_body["attachments"]
    assert teams_body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard" and "echo" in json.dumps(attachment["content"])


def test_email_channel_and_the_owners_default_email(smtp_server, admin_user, alice, make_source):
    channel(admin_user, "team@example.com", kind="email", is_global=True, event_types=["override.created"])
    source = make_source(name="dev")
    override = services.override_create(actor=Actor(context="web", user=alice), name="echo", source=source,
                                        image_tag="main")
    assert observe(override, "Download error: 401") == 1
    assert deliver_all() == ["succeeded", "succeeded"]
    recipients = sorted(m["To"] for m in smtp_server.messages)
    assert recipients == ["alice@example.com", "team@example.com"]
    failure = next(m for m in smtp_server.messages if m["To"] == "alice@example.com")
    assert "cannot download" in failure["Subject"] and "echo" in failure["Subject"]


def test_subscriptions_choose_events_sources_patterns_and_own_overrides(receiver_factory, admin_user, alice,
                                                                        make_source):
    dev, other = make_source(name="dev"), make_source(name="other")
    by_source, by_pattern, mine, only_deleted = (receiver_factory(200) for _ in range(4))
    channel(admin_user, by_source.url, is_global=True, scope="source", source=dev)
    channel(admin_user, by_pattern.url, is_global=True, scope="modules", module_patterns="team-*, echo")
    channel(alice, mine.url, scope="mine")
    channel(admin_user, only_deleted.url, is_global=True, event_types=["override.deleted"])
    as_alice = Actor(context="web", user=alice)
    services.override_create(actor=as_alice, name="team-a", source=other, image_tag="main")
    services.override_create(actor=Actor.system("cli"), name="echo", source=dev, image_tag="main")
    services.override_create(actor=Actor.system("cli"), name="zulu", source=other, image_tag="main")
    deliver_all()

    def names(receiver):
        return sorted(json.loads(body)["override"] for _, body in receiver.requests)

    assert names(by_source) == ["echo"] and names(by_pattern) == ["echo", "team-a"] and names(mine) == ["team-a"]
    assert names(only_deleted) == []


def test_no_spam_one_build_per_digest_and_state_transitions_only(make_override, settings):
    override = make_override(name="echo")
    digest = "sha256:" + "2" * 64
    for _ in range(3):
        events.emit_build_detected(override.pk, name="echo", digest=digest, previous="", reference="r/echo:main")
    for message in ("Download error: x", "Download error: x", "Download error: y"):
        observe(override, message)
    observe(override, "Ready", digest)  # reported, the Module not Ready on it yet: nothing
    assert observe(override, "Ready", digest, module="ready") == 1  # running: the recovery
    assert observe(override, "Ready", digest, module="ready") == 0  # no change
    kinds = list(NotificationEvent.objects.order_by("id").values_list("event_type", flat=True))
    assert kinds == ["override.created", "build.detected", "download.failed", "rollout.succeeded"]
    succeeded = NotificationEvent.objects.get(event_type="rollout.succeeded")
    assert succeeded.payload["digest"] == digest and succeeded.payload["verdict"]["state"] == "running"
    # A hook failure with the MPO still Ready is a failed rollout. Flapping within the repeat window: the second
    # failure and its recovery are not sent again.
    for _ in range(2):
        observe(override, "Ready", digest, module="failed")
        observe(override, "Ready", digest, module="ready")
    kinds = list(NotificationEvent.objects.order_by("id").values_list("event_type", flat=True))
    assert kinds[4:] == ["rollout.failed", "rollout.succeeded"]
    failed = NotificationEvent.objects.get(event_type="rollout.failed")
    about = failed.payload["verdict"]
    assert about["summary"] == "module Error: HookError: boom" and "failed on" in about["reason"]
    assert observe(override, "The module disabled", digest) == 1  # a gate: blocked, with the verdict's words
    blocked = NotificationEvent.objects.get(event_type="blocked")
    about = blocked.payload["verdict"]
    assert about["state"] == "blocked" and about["summary"].startswith("blocked")
    assert "The module disabled" in about["reason"]
    settings.PORTAL_NOTIFICATIONS = False
    events.emit_build_detected(override.pk, name="echo", digest="sha256:" + "3" * 64, previous=digest,
                               reference="r/echo:main")
    assert NotificationEvent.objects.count() == 7


def test_channel_form_refuses_bad_urls_and_never_shows_the_target(admin_user, receiver):
    client = Client()
    client.force_login(admin_user)
    form = {"name": "hook", "kind": "webhook", "scope": "all", "secret": SECRET}
    for target, words in (("ftp://example.com/x", "http:// or https://"),
                          ("http://no-such-host.invalid/hook", "does not resolve"),
                          ("http://127.0.0.1:8000/api/", "the portal itself")):
        page = client.post("/new/channel/", {**form, "target": target}, HTTP_HOST="127.0.0.1:8000")
        assert page.status_code == 200 and words in page.content.decode(), target
    assert NotificationChannel.objects.count() == 0
    created = client.post("/new/channel/", {**form, "target": receiver.url}, HTTP_HOST="127.0.0.1:8000")
    assert created.status_code == 302
    saved = NotificationChannel.objects.get()
    for url in ("/notifications/", created["Location"]):
        text = client.get(url, HTTP_HOST="127.0.0.1:8000").content.decode()
        assert "secret-path-123" not in text and SECRET not in text and saved.target_hint in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT target, secret FROM overrides_notificationchannel")
        stored = " ".join(cursor.fetchone())
    assert "secret-path-123" not in stored and SECRET not in stored
    assert not ObjectChange.objects.filter(after__icontains="secret-path").exists()


def test_users_manage_their_own_channels_and_admins_the_global_ones(alice, admin_user, receiver):
    client = Client()
    client.force_login(alice)
    page = client.get("/new/channel/").content.decode()
    assert "is_global" not in page  # only admins make global channels
    own = channel(alice, receiver.url)
    other = channel(admin_user, receiver.url, is_global=True)
    assert client.get(f"/notifications/{own.pk}/").status_code == 200
    assert client.get(f"/notifications/{other.pk}/").status_code == 403
    assert client.post(f"/notifications/{other.pk}/action/", {"action": "delete"}).status_code == 403
    assert client.get("/notifications/deliveries/").status_code == 403
    assert client.post(f"/notifications/{own.pk}/action/", {"action": "disable"}).status_code == 302
    assert not NotificationChannel.objects.get(pk=own.pk).enabled
    admin = Client()
    admin.force_login(admin_user)
    assert admin.get("/notifications/deliveries/").status_code == 200
