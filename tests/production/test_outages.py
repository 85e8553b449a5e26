"""A database or Redis outage under the production shape (PostgreSQL + Redis, a web server and a qcluster):
the API answers 503 with a JSON body while the database is down, accepts changes while only Redis is down, and
nothing accepted is lost when they return. Run by `make test-production`."""

import pytest
import requests
from django.db import connection

from overrides.models import ModulePullOverride
from tests.fixtures.jobs import wait_for
from tests.production.support import (
    AUTO_RENEW_OFF,
    INTERVAL,
    Api,
    control,
    make_overrides,
    needs_production_stack,
    wait_synced,
)
from tests.test_api_support import ci_user, make_token  # noqa: F401 - fixture

pytestmark = [needs_production_stack, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(cluster_settings, registry, ci_user, web_server_factory, qcluster_factory):  # noqa: F811
    api = Api(web_server_factory(AUTO_RENEW_OFF).url, make_token(ci_user))
    [module] = make_overrides(api, [], registry, registry.repo, 1)
    qcluster_factory(env=AUTO_RENEW_OFF, workers=2)
    wait_synced(module, "main", cluster_settings)
    registry.push(module, "pr1", "a branch build")
    return api, module, cluster_settings


def _answers(api: Api, status: int):
    def check():
        try:
            return api("GET", "overrides/").status_code == status
        except requests.RequestException:
            return False
    return check


def test_database_outage_is_a_json_503_and_the_portal_recovers(portal):
    api, module, emulator = portal
    control("PORTAL_TEST_POSTGRES_CTL", "stop")
    try:
        wait_for(_answers(api, 503), timeout=30, what="503 while the database is down")
        listing = api("GET", "overrides/")
        change = api("PUT", f"overrides/{module}/", json={"source": "dev", "imageTag": "pr1",
                                                          "scanInterval": f"{INTERVAL:g}s"})
    finally:
        control("PORTAL_TEST_POSTGRES_CTL", "start")
        connection.close()  # the test's own connection died with the server
    for refused in (listing, change):
        assert refused.status_code == 503 and refused.headers["Content-Type"] == "application/json"
        assert "database is unavailable" in refused.json()["detail"] and refused.headers["Retry-After"]
    wait_for(_answers(api, 200), timeout=60, what="the API back after the database returned")
    assert ModulePullOverride.objects.get(name=module).image_tag == "main"  # the refused change changed nothing
    assert api("PUT", f"overrides/{module}/", json={"source": "dev", "imageTag": "pr1",
                                                     "scanInterval": f"{INTERVAL:g}s"}).status_code == 200
    wait_synced(module, "pr1", emulator, timeout=150)


def test_redis_outage_keeps_accepting_and_applies_when_it_returns(portal):
    api, module, emulator = portal
    control("PORTAL_TEST_REDIS_CTL", "stop")
    try:
        accepted = api("PUT", f"overrides/{module}/", json={"source": "dev", "imageTag": "pr1",
                                                            "scanInterval": f"{INTERVAL:g}s"})
        assert accepted.status_code == 200, accepted.text  # saved: the row is the truth, the broker only a nudge
        assert api("GET", f"overrides/{module}/").json()["imageTag"] == "pr1"
    finally:
        control("PORTAL_TEST_REDIS_CTL", "start")  # empty: every queued task is gone
    wait_synced(module, "pr1", emulator, timeout=150)  # the watchdog restarts the dispatcher; its sweep applies it
