"""Pushing one-layer images to a test registry: OCI through oras-py, Docker v2 schema 2 with plain requests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from tests.registries.local import LocalRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join([OCI_MANIFEST, "application/vnd.oci.image.index.v1+json", DOCKER_MANIFEST,
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def push_image(registry: LocalRegistry, repo_path: str, tag: str, content: bytes | str,
               media_type: str = "oci") -> str:
    """Push a one-layer image to `<registry>/<repo_path>:<tag>` and return its digest.

    `media_type="oci"` pushes with oras-py (`Registry.push(target=..., files=[...])`, a file in a temp dir);
    `"docker"` PUTs a Docker v2 schema 2 manifest with requests. Same content, same digest.
    """
    data = content.encode() if isinstance(content, str) else content
    if media_type == "oci":
        return _push_oras(registry, repo_path, tag, data)
    if media_type == "docker":
        return _push_docker(registry, repo_path, tag, data)
    raise ValueError(f"media_type must be 'oci' or 'docker', not {media_type!r}")


def _push_oras(registry: LocalRegistry, repo_path: str, tag: str, data: bytes) -> str:
    import oras.provider

    backend = "token" if registry.auth == "token" else "basic"
    client = oras.provider.Registry(hostname=registry.host, insecure=registry.scheme == "HTTP",
                                    tls_verify=registry.ca_path, auth_backend=backend)
    if registry.auth == "token":
        # oras's TokenAuth keeps its first (pull-only) token and reuses it on the 401 asking for push; hand it a
        # pull+push token up front instead.
        client.auth.set_token_auth(registry.token_server.push_token(repo_path))  # type: ignore[union-attr]
    elif registry.username:
        client.auth.set_basic_auth(registry.username, registry.password)
    workdir = tempfile.mkdtemp(prefix="mpo-push-")
    try:
        path = os.path.join(workdir, "module.bin")
        with open(path, "wb") as out:
            out.write(data)
        response = client.push(target=f"{registry.host}/{repo_path}:{tag}", files=[path],
                               disable_path_validation=True, quiet=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        client.session.close()
    digest = response.headers.get("Docker-Content-Digest")
    if response.status_code != 201 or not digest:
        raise RuntimeError(f"push of {repo_path}:{tag} failed: HTTP {response.status_code}")
    return digest


def _push_docker(registry: LocalRegistry, repo_path: str, tag: str, data: bytes) -> str:
    def upload(session: requests.Session, blob: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        start = session.post(f"{registry.url}/v2/{repo_path}/blobs/uploads/", timeout=10)
        start.raise_for_status()
        location = start.headers["Location"]
        location = location if "://" in location else registry.url + location
        sep = "&" if "?" in location else "?"
        put = session.put(f"{location}{sep}digest={digest}", data=blob, timeout=10,
                          headers={"Content-Type": "application/octet-stream"})
        put.raise_for_status()
        return digest

    with registry.session(repo_path) as session:
        layer_digest = upload(session, data)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
        config_digest = upload(session, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                       "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(data),
                        "digest": layer_digest}],
        }).encode()
        response = session.put(f"{registry.url}/v2/{repo_path}/manifests/{tag}", data=manifest, timeout=10,
                               headers={"Content-Type": DOCKER_MANIFEST})
        response.raise_for_status()
    return response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(manifest).hexdigest()
