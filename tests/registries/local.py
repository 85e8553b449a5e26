"""One real registry: Debian's `docker-registry serve` (CNCF distribution 2.8) with its own storage and port."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import requests

from tests.registries.certificates import issue_server_cert, key_pem, make_ca, pem
from tests.registries.credentials import htpasswd_line, make_docker_cfg
from tests.registries.processes import die_with_parent, free_port, track
from tests.registries.push import ACCEPT, push_image
from tests.registries.token_server import TOKEN_ISSUER, TOKEN_SERVICE, TokenServer

DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
INSTALL_HINT = "apt-get install docker-registry apache2-utils skopeo (or `make test-deps`)"
DEFAULT_PATH = "deckhouse/modules"


class LocalRegistry:
    """One `docker-registry serve` process: anonymous, htpasswd Basic (`auth="basic"`), or Bearer tokens
    (`auth="token"` with a TokenServer); plain HTTP or HTTPS (`tls=True`, with a generated CA)."""

    def __init__(self, auth: str | None = None, tls: bool = False, token_server: TokenServer | None = None,
                 username: str = "mpo-user", password: str = "s3cret-Passw0rd", name: str = "") -> None:
        if auth == "token" and token_server is None:
            raise ValueError("auth='token' needs a TokenServer")
        self.auth = auth
        self.tls = tls
        self.token_server = token_server
        self.name = name or f"test-{auth or 'anon'}{'-tls' if tls else ''}"
        self.dir = tempfile.mkdtemp(prefix="mpo-registry-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.scheme = "HTTPS" if tls else "HTTP"
        self.url = f"{self.scheme.lower()}://{self.host}"
        self.repo = f"{self.host}/{DEFAULT_PATH}"
        self.ca_pem = ""
        self.ca_path: str | bool = True
        self.username, self.password = (username, password) if auth == "basic" else ("", "")
        if auth == "token":
            self.username, self.password = next(iter(token_server.users.items()))  # type: ignore[union-attr]
        self.process: subprocess.Popen | None = None
        self._write_config()
        track(self)
        self.start()

    # configuration ------------------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:", "  level: error", "  accesslog:", "    disabled: true",
            "storage:", f"  filesystem:\n    rootdirectory: {self.dir}/data", "  delete:", "    enabled: true",
            "  cache:", "    blobdescriptor: inmemory",
            "http:", f"  addr: {self.host}", f"  secret: {uuid.uuid4().hex}",
        ]
        if self.tls:
            ca_cert, ca_key = make_ca()
            cert, key = issue_server_cert(ca_cert, ca_key)
            self.ca_pem = pem(ca_cert)
            self.ca_path = os.path.join(self.dir, "ca.pem")
            for filename, text in (("ca.pem", self.ca_pem), ("server.pem", pem(cert)), ("server.key", key_pem(key))):
                with open(os.path.join(self.dir, filename), "w") as out:
                    out.write(text)
            lines += ["  tls:", f"    certificate: {self.dir}/server.pem", f"    key: {self.dir}/server.key"]
        if self.auth == "basic":
            with open(os.path.join(self.dir, "htpasswd"), "w") as out:
                out.write(htpasswd_line(self.username, self.password) + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: mpo-test", f"    path: {self.dir}/htpasswd"]
        elif self.auth == "token":
            ts = self.token_server
            lines += ["auth:", "  token:", f"    realm: {ts.realm}", f"    service: {TOKEN_SERVICE}",  # type: ignore
                      f"    issuer: {TOKEN_ISSUER}", f"    rootcertbundle: {ts.rootcertbundle}"]  # type: ignore
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as out:
            out.write("\n".join(lines) + "\n")

    # lifecycle ----------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self._log = open(os.path.join(self.dir, "registry.log"), "ab")  # noqa: SIM115 - kept for the process
        self.process = subprocess.Popen([DOCKER_REGISTRY, "serve", self.config], stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({self.process.returncode}): {self.log_tail()}")
            try:
                status = requests.get(f"{self.url}/v2/", timeout=0.5, verify=self.ca_path).status_code
                if status in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry on {self.host} not ready in {timeout}s: {self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self._log.close()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Registry stopped inside the block, started again after it (same port, same images)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, size: int = 2000) -> str:
        try:
            with open(os.path.join(self.dir, "registry.log"), "rb") as log:
                return log.read()[-size:].decode(errors="replace")
        except OSError:
            return ""

    # test helpers -------------------------------------------------------------------------------------------------
    @staticmethod
    def unique(prefix: str = "m") -> str:
        """A fresh name, valid as a module name, a tag and a path component."""
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    @property
    def docker_cfg(self) -> str:
        return make_docker_cfg(self.host, self.username, self.password) if self.username else ""

    def source(self, **overrides) -> SimpleNamespace:
        """A ModuleSource-like object for this registry (dockerCfg and CA included when it needs them)."""
        values = {"name": self.name, "repo": self.repo, "scheme": self.scheme, "docker_cfg": self.docker_cfg,
                  "ca": self.ca_pem}
        return SimpleNamespace(**{**values, **overrides})

    def push(self, module: str, tag: str, content: bytes | str = b"", media_type: str = "oci",
             repo: str | None = None) -> str:
        """Push `<repo>/<module>:<tag>` (a one-layer image whose layer is `content`); returns its digest."""
        path = (repo or self.repo).split("/", 1)[1]
        return push_image(self, f"{path}/{module}", tag, content or f"{module}:{tag}", media_type)

    def publish_module(self, name: str, repo: str | None = None, content: bytes | str = b"") -> str:
        """Tag `<repo>:<name>`: the registry layout Deckhouse discovers modules from."""
        path = (repo or self.repo).split("/", 1)[1]
        return push_image(self, path, name, content or f"module {name}")

    def session(self, repo_path: str | None = None) -> requests.Session:
        """A requests session allowed to push/pull `repo_path` (Basic credentials or a push token)."""
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
        session.verify = self.ca_path
        if self.auth == "basic":
            session.auth = (self.username, self.password)
        elif self.auth == "token" and repo_path:
            session.headers["Authorization"] = "Bearer " + self.token_server.push_token(repo_path)  # type: ignore
        return session

    def manifest(self, repo_path: str, tag: str) -> bytes:
        """The raw manifest bytes of `<repo_path>:<tag>`, as stored."""
        with self.session(repo_path) as session:
            response = session.get(f"{self.url}/v2/{repo_path}/manifests/{tag}", headers={"Accept": ACCEPT},
                                   timeout=10)
        response.raise_for_status()
        return response.content
