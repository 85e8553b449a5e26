"""Expiry and delivery under a real `manage.py qcluster` (subprocess on the test database, with its dispatcher):
the scheduler deletes an expired override and a notification reaches a real receiver after a 500."""

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.models import Delivery, DeliveryAttempt, ModulePullOverride, ObjectChange
from overrides.notifications import services as channel_services
from tests.fixtures.jobs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_qcluster_expires_overrides_and_delivers_with_a_retry(qcluster_factory, receiver_factory, registry, actor,
                                                              admin_user):
    receiver = receiver_factory(500, 200)
    channel_services.channel_create(user=admin_user, name="hook", kind="webhook", target=receiver.url,
                                    secret="s3cret", is_global=True,
                                    subscription={"event_types": ["override.expired"], "scope": "all",
                                                  "source": None, "module_patterns": ""})
    module = registry.unique("exp")
    registry.push(module, "main", "v1")
    source = services.source_create(actor=actor, name=registry.unique("src"), repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main",
                                        expires=(timezone.now() + timedelta(seconds=2)).isoformat())
    cluster = qcluster_factory(env={"PORTAL_NOTIFY_BACKOFF": "1"})
    wait_for(lambda: ModulePullOverride.all_objects.get(pk=override.pk).is_deleted, timeout=60,
             what=f"the scheduler to expire the override\n{cluster.log_tail()}")
    change = ObjectChange.objects.get(object_id=override.pk, action="delete")
    assert change.context == "scheduler" and change.message == "expired"
    wait_for(lambda: Delivery.objects.filter(state="succeeded").exists(), timeout=60,
             what=f"the delivery to succeed after its retry\n{cluster.log_tail()}")
    assert [a.status_code for a in DeliveryAttempt.objects.order_by("at")] == [500, 200]
    bodies = [body for _, body in receiver.requests]
    assert len(bodies) == 2 and b'"override.expired"' in bodies[1]


def test_a_hanging_receiver_does_not_hold_the_other_channels(qcluster_factory, receiver_factory,
                                                               admin_user, make_source, actor):
    hanging, healthy = receiver_factory(("hang", 30)), receiver_factory(200)
    for name, receiver in (("hanging", hanging), ("healthy", healthy)):
        channel_services.channel_create(user=admin_user, name=name, kind="webhook", target=receiver.url,
                                        is_global=True, subscription={"event_types": [], "scope": "all",
                                                                      "source": None, "module_patterns": ""})
    qcluster_factory(env={"PORTAL_NOTIFY_TIMEOUT": "2", "PORTAL_NOTIFY_BACKOFF": "1"})
    source = make_source(name="dev")
    for i in range(3):
        services.override_create(actor=actor, name=f"m{i}", source=source, image_tag="main")
    wait_for(lambda: len(healthy.requests) >= 3, timeout=30, what="the healthy channel's deliveries")
    wait_for(lambda: DeliveryAttempt.objects.filter(error__startswith="no answer").exists(), timeout=60,
             what="the hanging channel's timed-out attempt")
    hanging_channel = Delivery.objects.filter(channel__name="hanging").first().channel
    hanging_channel.refresh_from_db()
    assert hanging_channel.failures_in_a_row >= 1 and "no answer" in hanging_channel.last_error
