"""Hostile bodies get a 400 or 413 with a reason, never a 500: a dockerCfg that is base64 of deeply nested JSON
(API, form, admin), JSON nested ~1000 levels on every API write, a body over the upload limit, and registry
webhook bodies with a 5000-digit number or deep nesting."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import base64

import pytest
from django.urls import reverse

from overrides.models import ModuleSource
from tests.test_api_support import *

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000
DEEP_CFG = base64.b64encode(('{"auths": ' + "[" * 5000 + "]" * 5000 + "}").encode()).decode()
HUGE_NUMBER = '{"events": [{"action": "push", "target": {"size": ' + "9" * 5000 + "}}]}"


@pytest.fixture
def echo(make_source, make_override):
    return make_override(name="echo", source=make_source(name="dev"))


def _json_400(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_api_refuses_a_dockercfg_of_deeply_nested_json(api):
    body = {"name": "deep", "registry": {"repo": "registry.example.com/modules", "dockerCfg": DEEP_CFG}}
    errors = _json_400(api.post("/api/v1/sources/", body, format="json"))
    assert "registry.dockerCfg" in errors and "docker config.json" in " ".join(errors["registry.dockerCfg"])
    assert not ModuleSource.objects.filter(name="deep").exists()


def test_form_refuses_a_dockercfg_of_deeply_nested_json(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/new/source/", {"name": "deep", "repo": "registry.example.com/modules",
                                            "scheme": "HTTPS", "new_docker_cfg": DEEP_CFG})
    assert response.status_code == 200 and "docker config.json" in response.content.decode()
    assert not ModuleSource.objects.filter(name="deep").exists()


def test_admin_refuses_a_dockercfg_of_deeply_nested_json(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("admin:overrides_modulesource_add"), {
        "name": "deep", "repo": "registry.example.com/modules", "scheme": "HTTPS", "new_docker_cfg": DEEP_CFG,
        "ca": "", "release_channel": ""})
    assert response.status_code == 200 and "docker config.json" in response.content.decode()
    assert not ModuleSource.objects.filter(name="deep").exists()


@pytest.mark.parametrize("method,url", [
    ("post", "/api/v1/overrides/"), ("put", "/api/v1/overrides/echo/"), ("patch", "/api/v1/overrides/echo/"),
    ("post", "/api/v1/overrides/echo/renew/"), ("delete", "/api/v1/overrides/echo/"),
    ("post", "/api/v1/sources/"), ("put", "/api/v1/sources/dev/"), ("patch", "/api/v1/sources/dev/"),
    ("put", "/api/v1/sources/other/"),
])
def test_every_api_write_refuses_json_nested_1000_levels(api, echo, method, url):
    response = getattr(api, method)(url, DEEP, content_type="application/json")
    errors = _json_400(response)
    assert "levels deep" in " ".join(errors["non_field_errors"])


def test_api_refuses_huge_numbers_and_nan(api, echo):
    for body in ('{"imageTag": ' + "1" * 5000 + "}", '{"imageTag": NaN}', '{"imageTag": 1e999}'):
        errors = _json_400(api.patch("/api/v1/overrides/echo/", body, content_type="application/json"))
        assert "not acceptable JSON" in " ".join(errors["non_field_errors"])


def test_api_body_over_the_upload_limit_is_413_with_a_reason(api, echo, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"imageTag": "main", "changelogMessage": "' + "x" * 20_000 + '"}'
    response = api.patch("/api/v1/overrides/echo/", body, content_type="application/json")
    assert response.status_code == 413 and "larger than 10000 bytes" in response.json()["detail"]


@pytest.mark.parametrize("body", [HUGE_NUMBER, '{"events": ' + "[" * 5000 + "]" * 5000 + "}",
                                  '{"type": "PUSH_ARTIFACT", "event_data": ' + '{"a": ' * 2000 + "1" + "}" * 2001])
def test_webhook_refuses_huge_numbers_and_deep_nesting(client, settings, body):
    settings.PORTAL_WEBHOOK_SECRET = "hook-s3cret"
    response = client.post("/api/v1/webhooks/registry/", data=body, content_type="application/json",
                           HTTP_AUTHORIZATION="Bearer hook-s3cret")
    assert response.status_code == 400 and response.json()["detail"].startswith("The body")
