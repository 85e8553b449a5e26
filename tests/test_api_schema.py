"""The OpenAPI schema and Swagger UI, and a schemathesis run over the whole API (no 5xx, no response that
breaks the schema), as a write token's owner against the WSGI app."""
# ruff: noqa: F403, F405 - fixtures and helpers come from tests/test_api_support.py

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portal.wsgi import application
from tests.test_api_support import *

pytestmark = pytest.mark.django_db


@pytest.fixture
def openapi(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_documents_every_operation_and_field(openapi):
    assert openapi["openapi"].startswith("3.")
    operations = {(path, method) for path, item in openapi["paths"].items() for method in item}
    assert {
        ("/api/v1/sources/", "get"), ("/api/v1/sources/", "post"), ("/api/v1/sources/{name}/", "put"),
        ("/api/v1/sources/{name}/", "patch"), ("/api/v1/sources/{name}/", "delete"),
        ("/api/v1/overrides/", "post"), ("/api/v1/overrides/{name}/", "put"),
        ("/api/v1/overrides/{name}/renew/", "post"), ("/api/v1/overrides/{name}/rollout/", "get"),
        ("/api/v1/overrides/{name}/digests/", "get"), ("/api/v1/audit/", "get"),
    } <= operations
    undocumented = [
        f"{name}.{prop}"
        for name, component in openapi["components"]["schemas"].items()
        for prop, spec in component.get("properties", {}).items()
        if not spec.get("description")
    ]
    undocumented += [
        f"{path} {method} {param['name']}"
        for path, item in openapi["paths"].items() for method, op in item.items()
        for param in op.get("parameters", []) if not param.get("description")
    ]
    assert undocumented == []
    assert openapi["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": openapi["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    source = openapi["components"]["schemas"]["Registry"]["properties"]
    assert "dockerCfg" not in source  # write-only: only in the request component
    assert openapi["components"]["schemas"]["RegistryRequest"]["properties"]["dockerCfg"]["writeOnly"] is True
    # The rollout verdict: on the override resource and in the rollout answer.
    schemas = openapi["components"]["schemas"]
    assert schemas["ModulePullOverride"]["properties"]["verdict"]["allOf"][0]["$ref"].endswith("/Verdict") or \
        schemas["ModulePullOverride"]["properties"]["verdict"]["$ref"].endswith("/Verdict")
    assert set(schemas["Verdict"]["properties"]) == {"state", "summary", "reason", "since"}
    assert {"verdict", "modulePhase"} <= set(schemas["Rollout"]["properties"])


def test_swagger_ui_is_served_by_the_portal(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html
    # No inline script (the Content-Security-Policy allows none): the set-up script is a request of its own.
    assert "<script>" not in html and '<script src="/api/docs/?script=">' in html
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript") and "/api/schema/" in script.content.decode()


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: requests through the WSGI app must not close the test's DB connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

# Loaded when the module is collected: fetching the schema needs no database (the view reads none).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@schema.hook
def flatmap_path_parameters(ctx, parameters):
    """Half of the generated names point at objects that exist (see `seeded`), so detail routes run too."""
    if not parameters or "name" not in parameters:
        return st.just(parameters)
    existing = "dev" if "/sources/" in ctx.operation.path else "echo"
    return st.sampled_from([parameters, {**parameters, "name": existing}])


@pytest.fixture
def seeded(make_source, make_override):
    source = make_source(name="dev", repo="registry.example.com/deckhouse/modules")
    make_override(name="echo", source=source)
    make_override(name="alpha", source=source)


@pytest.fixture
def write_token(ci_user) -> str:
    return make_token(ci_user)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, keep_test_connection, seeded, write_token):
    # Schema-valid input may still be refused (an unknown source, a name differing from the URL) and the
    # lists ignore unparsable paging like DRF does, so the data acceptance checks are left out.
    case.call_and_validate(headers={"Authorization": f"Bearer {write_token}"}, checks=CHECKS)
