"""deploy/deckhouse/dexclient.yaml is a DexClient as Deckhouse's user-authn module defines it, whose redirect URI
is the portal's OIDC callback."""

from pathlib import Path

import yaml
from django.urls import reverse

MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "deckhouse" / "dexclient.yaml"
# spec properties of deckhouse.io/v1 DexClient (modules/150-user-authn/crds/dex-client.yaml)
SPEC_PROPERTIES = {"allowedEmails", "allowedGroups", "redirectURIs", "trustedPeers", "secretMetadata"}


def test_dexclient_manifest():
    doc = yaml.safe_load(MANIFEST.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("deckhouse.io/v1", "DexClient")
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    assert set(doc["spec"]) <= SPEC_PROPERTIES
    assert all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in doc["spec"].values())
    callback = reverse("social:complete", args=["oidc"])
    assert all(uri.startswith("https://") and uri.endswith(callback) for uri in doc["spec"]["redirectURIs"])
    text = MANIFEST.read_text()
    assert f"dex-client-{doc['metadata']['name']}@{doc['metadata']['namespace']}" in text
    assert f"secretKeyRef: {{name: dex-client-{doc['metadata']['name']}, key: clientSecret}}" in text
