"""A docker token server for distribution's `auth.token`: RS256 JWTs per repository scope."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from tests.registries.certificates import pem
from tests.registries.http import QuietHandler, ThreadedServer

TOKEN_SERVICE = "mpo-test-registry"
TOKEN_ISSUER = "mpo-test-token-issuer"


class TokenServer(ThreadedServer):
    """A docker token server (https://distribution.github.io/distribution/spec/auth/token/) for distribution's
    `auth.token`: GET /token?service=&scope=repository:<name>:<actions> with optional Basic auth.

    `users` maps username -> password; an authenticated user gets the actions asked for on any repository,
    an anonymous one gets nothing (the registry then answers 401). Each token carries only its scope, so a
    token for one repository is refused for another. `issued` records (account, scope) per token;
    `registry_ttl` = N makes tokens that the registry accepts for only about N seconds (distribution allows 60 s
    of clock skew past `exp`) while `expires_in` still says 300 s: a client must refresh on 401.
    """

    def __init__(self, users: dict[str, str] | None = None) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = dict(users or {"puller": "token-pass-1"})
        self.issued: list[tuple[str, str]] = []
        self.registry_ttl: int | None = None
        self._lock = threading.Lock()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mpo test token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        self.dir = tempfile.mkdtemp(prefix="mpo-token-")
        self.rootcertbundle = os.path.join(self.dir, "root.pem")
        with open(self.rootcertbundle, "w") as out:
            out.write(pem(self.cert))
        super().__init__(_TokenHandler)
        self.realm = f"{self.url}/token"

    def make_token(self, subject: str, access: list[dict], ttl: int | None = None) -> str:
        """A signed JWT the registry accepts for 300 s, or for about `ttl` s (past `exp` + the 60 s leeway)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        exp = now + 300 if ttl is None else now - 60 + ttl

        def b64(data: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE, "exp": exp, "nbf": now - 600,
                  "iat": now - 600, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{b64(header)}.{b64(claims)}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def push_token(self, repo_path: str) -> str:
        return self.make_token("pusher", [{"type": "repository", "name": repo_path, "actions": ["pull", "push"]}])

    def scopes_issued(self) -> list[str]:
        with self._lock:
            return [scope for _, scope in self.issued]

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _TokenHandler(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        server: TokenServer = self.server.owner  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        if parts.path != "/token":
            return self.reply(404)
        query = parse_qs(parts.query)
        account = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return self.reply(400)
            if server.users.get(user) != password:
                return self.reply(401, b'{"details":"invalid credentials"}', {"Content-Type": "application/json"})
            account = user
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and account:
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        with server._lock:
            server.issued.append((account, ",".join(query.get("scope", []))))
        token = server.make_token(account, access, ttl=server.registry_ttl)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                           "issued_at": dt.datetime.now(dt.UTC).isoformat()}).encode()
        self.reply(200, body, {"Content-Type": "application/json"})
