"""/metrics (Prometheus text format) and JSON logs with the request id carried into tasks, on real servers."""

import io
import json
import logging

import pytest
from django.test import Client
from django_q.brokers import get_broker
from django_q.signals import pre_execute
from django_q.signing import SignedPackage
from prometheus_client.parser import text_string_to_metric_families

from overrides.polling import checks as polling
from portal.logformat import JsonFormatter
from portal.middleware import RequestIDLogFilter
from tests.test_api_support import ci_user, client_with, make_token  # noqa: F401 - fixtures

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metrics_on(settings):
    settings.PORTAL_METRICS_TOKEN = TOKEN


def scrape() -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_token_and_refuse_a_wrong_one(db, settings):
    settings.PORTAL_METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    settings.PORTAL_METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 401
    refused = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401 and TOKEN not in refused.content.decode()


def test_http_requests_are_counted_by_route_method_and_status(db, metrics_on, ci_user):  # noqa: F811
    api = client_with(make_token(ci_user))
    before = scrape()
    assert api.get("/api/v1/overrides/").status_code == 200
    assert api.get("/api/v1/overrides/nothing-here/").status_code == 404
    after = scrape()
    route = {"route": "api:override-list", "method": "GET", "status": "200"}
    assert value(after, "mpo_portal_http_requests_total", **route) == value(
        before, "mpo_portal_http_requests_total", **route) + 1
    missing = {"route": "api:override-detail", "method": "GET", "status": "404"}
    assert value(after, "mpo_portal_http_requests_total", **missing) >= 1
    count = {"route": "api:override-list", "method": "GET"}
    assert value(after, "mpo_portal_http_request_duration_seconds_count", **count) == value(
        before, "mpo_portal_http_request_duration_seconds_count", **count) + 1


def test_checks_digest_changes_errors_and_override_gauges(db, metrics_on, registry, make_source, actor):
    from overrides import services

    repo = f"{registry.host}/{registry.unique('m')}/modules"
    source = make_source(name=registry.unique("src"), repo=repo, scheme="HTTP")
    registry.push("echo", "main", "v1", repo=repo)
    present = services.override_create(actor=actor, name="echo", source=source, image_tag="main")
    absent = services.override_create(actor=actor, name="gone", source=source, image_tag="main")
    before = scrape()
    assert polling.check_override(present.pk) == "first"
    assert polling.check_override(absent.pk) == "failed"
    after = scrape()
    host = {"host": registry.host}
    for result in ("first", "failed"):
        assert value(after, "mpo_portal_registry_checks_total", result=result, **host) == value(
            before, "mpo_portal_registry_checks_total", result=result, **host) + 1
    assert value(after, "mpo_portal_digest_changes_total", origin="registry") == value(
        before, "mpo_portal_digest_changes_total", origin="registry") + 1
    kinds = {labels: v for (name, labels), v in after.items() if name == "mpo_portal_registry_errors_total"}
    assert sum(kinds.values()) >= 1
    # Cluster sync is off in tests: both overrides' status (the rollout verdict) is "sync-off".
    assert value(after, "mpo_portal_overrides", sync_state="off", status="sync-off") == 2


def _json_log_lines(logger_name: str):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIDLogFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    return stream, lambda: logger.removeHandler(handler)


def test_json_log_lines_carry_the_request_id_into_the_task_it_enqueued(transactional_db, ci_user):  # noqa: F811
    """A renew through the API enqueues a check after commit: the queued task holds the request's id, and the
    task's log lines (formatted as JSON) carry it when a worker runs it."""
    from overrides import services
    from overrides.audit import Actor
    from overrides.models import ModuleSource

    source = ModuleSource.objects.create(name="src", repo="registry.example.com/modules")
    services.override_create(actor=Actor.system("cli"), name="echo", source=source, image_tag="main")
    broker = get_broker()
    while broker.dequeue():
        pass  # the create's own tasks
    api = client_with(make_token(ci_user))
    response = api.post("/api/v1/overrides/echo/renew/", {}, format="json")
    assert response.status_code == 202, response.content
    request_id = response["X-Request-ID"]
    packages = [SignedPackage.loads(pack) for _, pack in (broker.dequeue() or [])]
    check = next(task for task in packages if task["func"] == "overrides.tasks.check_override")
    assert check["request_id"] == request_id

    stream, detach = _json_log_lines("tests.task")
    try:
        pre_execute.send(sender="django_q", func=check["func"], task=check)  # what the worker does first
        logging.getLogger("tests.task").warning("checking %s", "echo")
        pre_execute.send(sender="django_q", func="other", task={"id": "x"})  # a task no request enqueued
        logging.getLogger("tests.task").warning("sweep")
    finally:
        detach()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == request_id and first["message"] == "checking echo"
    assert first["level"] == "WARNING" and first["logger"] == "tests.task"
    assert second["request_id"] == "-"

