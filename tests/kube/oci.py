"""The few registry calls the simulated Deckhouse makes: a manifest digest, a tag list and an image's content.

Written like Deckhouse does it (go-containerregistry): HEAD with the OCI + Docker Accept
types, credentials from the ModuleSource's ``dockerCfg``, Basic or Bearer token auth.
Deliberately independent of the product's ``registry/client.py`` so it can catch its bugs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import requests

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


class RegistryError(Exception):
    """Any failure talking to the registry; ``str()`` is what lands in ``Download error: <err>``."""


@dataclass
class RegistryAccess:
    """Access to one ModuleSource's registry (``spec.registry``)."""

    repo: str
    scheme: str = "HTTPS"
    docker_cfg: str | None = None
    ca: str | None = None
    timeout: float = 2.0

    @classmethod
    def from_source(cls, source: dict[str, Any], timeout: float = 2.0) -> RegistryAccess:
        registry = source.get("spec", {}).get("registry", {})
        return cls(repo=registry.get("repo", "").rstrip("/"), scheme=registry.get("scheme") or "HTTPS",
                   docker_cfg=registry.get("dockerCfg") or None, ca=registry.get("ca") or None, timeout=timeout)

    @property
    def host(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.repo.split("/", 1)[1] if "/" in self.repo else ""

    def base_url(self) -> str:
        return f"{'http' if self.scheme.upper() == 'HTTP' else 'https'}://{self.host}"

    def credentials(self) -> tuple[str, str] | None:
        """User and password for the registry host from ``dockerCfg``; None when anonymous."""
        if not self.docker_cfg:
            return None
        try:
            auths = json.loads(base64.b64decode(self.docker_cfg)).get("auths", {})
        except ValueError as exc:
            raise RegistryError(f"decode dockerCfg: {exc}") from exc
        entry = auths.get(self.host)
        if entry is None:
            raise RegistryError(f'"{self.repo}" credentials not found in the dockerCfg')
        if entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
        return entry.get("username", ""), entry.get("password", "")

    def _request(self, method: str, url: str, headers: dict[str, str]) -> requests.Response:
        creds = self.credentials()
        with requests.Session() as session, tempfile.TemporaryDirectory() as tmp:
            session.trust_env = False  # no proxies or CA bundles from the environment: loopback registries
            session.auth = creds
            if self.ca:
                session.verify = os.path.join(tmp, "ca.pem")
                with open(session.verify, "w") as handle:
                    handle.write(self.ca)
            try:
                response = session.request(method, url, headers=headers, timeout=self.timeout)
                challenge = response.headers.get("WWW-Authenticate", "")
                if response.status_code == 401 and challenge.lower().startswith("bearer"):
                    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
                    query = {k: v for k, v in params.items() if k in ("service", "scope")}
                    reply = session.get(params.get("realm", ""), params=query, timeout=self.timeout)
                    reply.raise_for_status()
                    token = reply.json().get("token") or reply.json().get("access_token", "")
                    session.auth = None
                    response = session.request(method, url, headers={**headers, "Authorization": f"Bearer {token}"},
                                               timeout=self.timeout)
            except requests.RequestException as exc:
                raise RegistryError(f"{method} {url}: {exc}") from exc
            return response

    def manifest_digest(self, name: str | None, tag: str) -> str:
        """``Docker-Content-Digest`` of ``<repo>/<name>:<tag>`` (``<repo>:<tag>`` when name is None)."""
        repository = f"{self.path}/{name}" if name else self.path
        url = f"{self.base_url()}/v2/{repository}/manifests/{tag}"
        response = self._request("HEAD", url, {"Accept": MANIFEST_TYPES})
        if response.status_code != 200:
            raise RegistryError(f"HEAD {url}: unexpected status code {response.status_code} {response.reason} "
                                "(HEAD responses have no body, use GET for details)")
        digest = response.headers.get("Docker-Content-Digest", "")
        if not digest:
            raise RegistryError(f"HEAD {url}: no Docker-Content-Digest header")
        return digest

    def image_content(self, name: str, tag: str) -> bytes:
        """The first layer of ``<repo>/<name>:<tag>`` (what a deploy downloads; the test images have one)."""
        base = f"{self.base_url()}/v2/{self.path}/{name}"
        response = self._request("GET", f"{base}/manifests/{tag}", {"Accept": MANIFEST_TYPES})
        if response.status_code != 200:
            raise RegistryError(f"GET {base}/manifests/{tag}: unexpected status code {response.status_code}")
        layers = response.json().get("layers") or []
        if not layers:
            return b""
        blob = self._request("GET", f"{base}/blobs/{layers[0]['digest']}", {})
        if blob.status_code != 200:
            raise RegistryError(f"GET {base}/blobs/{layers[0]['digest']}: unexpected status code {blob.status_code}")
        return blob.content

    def tags(self, limit: int = 1500) -> list[str]:
        """Tags of the repository itself, following ``Link`` pagination."""
        url: str | None = f"{self.base_url()}/v2/{self.path}/tags/list"
        found: list[str] = []
        while url and len(found) < limit:
            response = self._request("GET", url, {"Accept": "application/json"})
            if response.status_code != 200:
                raise RegistryError(f"GET {url}: unexpected status code {response.status_code}: {response.text[:200]}")
            found += response.json().get("tags") or []
            link = re.match(r"<([^>]+)>", response.headers.get("Link", ""))
            url = (link.group(1) if link.group(1).startswith("http") else self.base_url() + link.group(1)) \
                if link else None
        return found[:limit]
