"""deploy/deckhouse signs in with the cluster's Dex: a DexClient as Deckhouse's user-authn module defines it
(deckhouse.io/v1, modules/150-user-authn/crds/dex-client.yaml), the client id Dex derives from it, the web pods
reading the client secret from the Secret Dex creates, and a redirect URI that is the portal's callback on the
Ingress host."""

import pytest
from django.urls import reverse

from tests.deploy import kubectl, one, render

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders deploy/)")
# spec properties of deckhouse.io/v1 DexClient, every one a list of strings but secretMetadata
SPEC_LISTS = {"allowedEmails", "allowedGroups", "redirectURIs", "trustedPeers"}


@pytest.fixture(scope="module")
def objects():
    return render("deckhouse")


def _settings(objects) -> dict[str, str]:
    return next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(
        "mpo-portal-settings"))["data"]


def test_the_dexclient_follows_deckhouses_schema(objects):
    client = one(objects, "DexClient")
    assert client["apiVersion"] == "deckhouse.io/v1" and client["metadata"]["namespace"]
    assert set(client["spec"]) <= SPEC_LISTS | {"secretMetadata"}
    for key in set(client["spec"]) & SPEC_LISTS:
        assert all(isinstance(item, str) for item in client["spec"][key]), key


def test_the_portal_is_configured_as_that_client(objects):
    client = one(objects, "DexClient")
    name, namespace = client["metadata"]["name"], client["metadata"]["namespace"]
    settings = _settings(objects)
    assert settings["PORTAL_OIDC_CLIENT_ID"] == f"dex-client-{name}@{namespace}"
    assert settings["PORTAL_OIDC_ISSUER"].startswith("https://")
    web = one(objects, "Deployment", "mpo-portal-web")["spec"]["template"]["spec"]["containers"][0]
    secret = next(e for e in web["env"] if e["name"] == "PORTAL_OIDC_CLIENT_SECRET")["valueFrom"]["secretKeyRef"]
    assert secret == {"name": f"dex-client-{name}", "key": "clientSecret", "optional": True}
    mapped = {g for key in ("ADMIN", "DEVELOPER", "VIEWER")
              for g in settings[f"PORTAL_OIDC_{key}_GROUPS"].split(",") if g}
    assert mapped <= set(client["spec"]["allowedGroups"])  # Dex lets in everyone the portal gives a role


def test_the_redirect_uri_is_the_callback_on_the_ingress_host(objects):
    host = one(objects, "Ingress")["spec"]["rules"][0]["host"]
    callback = reverse("social:complete", args=["oidc"])
    assert one(objects, "DexClient")["spec"]["redirectURIs"] == [f"https://{host}{callback}"]
