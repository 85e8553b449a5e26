"""Registry push notifications: a real distribution registry notifying the live server, Harbor bodies, bad input."""

import json

import pytest
from django.utils import timezone

from overrides import services
from overrides.models import DigestObservation, ModulePullOverride
from overrides.polling import checks as polling
from tests.fixtures.jobs import wait_for

URL = "/api/v1/webhooks/registry/"
SECRET = "hook-s3cret"
DISTRIBUTION = "application/vnd.docker.distribution.events.v1+json"


@pytest.fixture
def webhook_secret(settings):
    settings.PORTAL_WEBHOOK_SECRET = SECRET
    return SECRET


def _push_event(repository, tag, host, action="push", media_type="application/vnd.oci.image.manifest.v1+json"):
    target = {"mediaType": media_type, "digest": "sha256:" + "0" * 64, "repository": repository,
              "url": f"http://{host}/v2/{repository}/manifests/sha256:{'0' * 64}"}
    if tag:
        target["tag"] = tag
    return {"id": "e1", "timestamp": "2026-11-26T10:00:00Z", "action": action, "target": target,
            "request": {"id": "r1", "addr": "127.0.0.1:5555", "host": host, "method": "PUT"},
            "source": {"addr": "registry:5000"}}


def _post(client, body, auth=f"Bearer {SECRET}", content_type=DISTRIBUTION):
    headers = {"HTTP_AUTHORIZATION": auth} if auth is not None else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


@pytest.fixture
def echo(make_source, actor):
    source = make_source(name="dev", repo="registry.example.com:5000/deckhouse/modules", scheme="HTTP")
    override = services.override_create(actor=actor, name="echo", source=source, image_tag="main",
                                        scan_interval="1h")
    # Checked a minute ago: not due for an hour.
    ModulePullOverride.objects.filter(pk=override.pk).update(
        next_check_at=timezone.now() + timezone.timedelta(minutes=59))
    return override


def _due(override) -> bool:
    return ModulePullOverride.objects.get(pk=override.pk).next_check_at <= timezone.now()


# --- the real thing -------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_distribution_notification_triggers_a_check(live_server, notifying_registry, webhook_secret,
                                                    start_dispatcher, actor):
    registry = notifying_registry(f"{live_server.url}{URL}", webhook_secret)
    first = registry.push("echo", "main", "v1")
    source = services.source_create(actor=actor, name="dev", repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name="echo", source=source, image_tag="main",
                                        scan_interval="1h")
    assert polling.check_override(override.pk) == "first"
    dispatcher = start_dispatcher(max_run=6, tick=0.05)

    second = registry.push("echo", "main", "v2")  # the registry notifies the portal, which checks the registry
    wait_for(lambda: ModulePullOverride.objects.get(pk=override.pk).registry_digest == second, timeout=5,
             what="the webhook-triggered check")
    report = dispatcher.join()
    assert report.per_override[override.pk] == 1  # one check for one push: nothing else is due within the hour
    digests = list(DigestObservation.objects.filter(override=override).order_by("id").values_list("digest", flat=True))
    assert digests == [first, second]


# --- bodies ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_distribution_envelope_makes_the_named_override_due(client, webhook_secret, echo,
                                                            django_capture_on_commit_callbacks):
    body = {"events": [
        _push_event("deckhouse/modules/echo", "main", "registry.example.com:5000"),
        _push_event("deckhouse/modules/echo", "", "registry.example.com:5000"),  # a push by digest: no tag
        _push_event("deckhouse/modules/echo", "main", "registry.example.com:5000", action="pull"),
        _push_event("deckhouse/modules/other", "main", "registry.example.com:5000"),
    ]}
    with django_capture_on_commit_callbacks() as enqueued:
        response = _post(client, body)
    assert response.status_code == 202
    assert response.json() == {"pushes": 2, "checking": ["echo"]}
    assert _due(echo) and len(enqueued) == 1


@pytest.mark.django_db
def test_harbor_push_with_its_bare_authorization_header(client, webhook_secret, echo):
    body = {"type": "PUSH_ARTIFACT", "occur_at": 1700000000, "operator": "ci",
            "event_data": {"resources": [{"digest": "sha256:" + "1" * 64, "tag": "main",
                                          "resource_url": "registry.example.com:5000/deckhouse/modules/echo:main"}],
                           "repository": {"name": "echo", "namespace": "deckhouse",
                                          "repo_full_name": "deckhouse/modules/echo", "repo_type": "private"}}}
    response = _post(client, body, auth=SECRET, content_type="application/json")
    assert response.status_code == 202 and response.json()["checking"] == ["echo"]
    assert _due(echo)


@pytest.mark.django_db
def test_other_harbor_events_are_accepted_and_ignored(client, webhook_secret, echo):
    body = {"type": "DELETE_ARTIFACT", "event_data": {"repository": {"repo_full_name": "deckhouse/modules/echo"}}}
    response = _post(client, body, auth=SECRET, content_type="application/json")
    assert response.status_code == 202 and response.json() == {"pushes": 0, "checking": []}
    assert not _due(echo)


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["registry.internal", "10.0.0.5:5000", "registry.example.com:5000", ""])
def test_the_registry_may_name_itself_differently(client, webhook_secret, echo, host):
    response = _post(client, {"events": [_push_event("deckhouse/modules/echo", "main", host)]})
    assert response.json()["checking"] == ["echo"]


@pytest.mark.django_db
@pytest.mark.parametrize("repository, tag", [("other/modules/echo", "main"), ("deckhouse/modules/echo", "dev"),
                                             ("echo", "main"), ("deckhouse/modules/echo/main", "main")])
def test_another_path_or_tag_names_nothing(client, webhook_secret, echo, repository, tag):
    response = _post(client, {"events": [_push_event(repository, tag, "registry.example.com:5000")]})
    assert response.status_code == 202 and response.json()["checking"] == []
    assert not _due(echo)


# --- refusals -------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_disabled_without_a_secret(client, settings):
    settings.PORTAL_WEBHOOK_SECRET = ""
    response = _post(client, {"events": []})
    assert response.status_code == 404 and "PORTAL_WEBHOOK_SECRET" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("auth", [None, "", "Bearer wrong", "wrong", f"Basic {SECRET}", f"Bearer {SECRET}x"])
def test_wrong_or_missing_secret_is_refused(client, webhook_secret, echo, auth):
    response = _post(client, {"events": [_push_event("deckhouse/modules/echo", "main", "registry.example.com:5000")]},
                     auth=auth)
    assert response.status_code == 401 and "secret" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert SECRET not in response.content.decode()
    assert not _due(echo)


@pytest.mark.django_db
@pytest.mark.parametrize("body, words", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    ("[1, 2]", "Not a registry notification"),
    ('"push"', "Not a registry notification"),
    ('{"events": {"action": "push"}}', '"events" must be a list'),
    ('{"type": "PUSH_ARTIFACT", "event_data": []}', '"event_data" must be an object'),
    ('{"type": "PUSH_ARTIFACT", "event_data": {"resources": []}}', "repo_full_name"),
])
def test_bad_bodies_get_400_with_words(client, webhook_secret, body, words):
    response = _post(client, body)
    assert response.status_code == 400 and words in response.json()["detail"]


@pytest.mark.django_db
def test_odd_events_inside_a_valid_envelope_are_skipped(client, webhook_secret):
    body = {"events": [1, "x", None, {"action": "push", "target": "nope"}, {"action": "push", "target": {"tag": 5}}]}
    response = _post(client, body)
    assert response.status_code == 202 and response.json() == {"pushes": 0, "checking": []}


@pytest.mark.django_db
def test_only_post(client, webhook_secret):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 405 and response["Allow"] == "POST"
