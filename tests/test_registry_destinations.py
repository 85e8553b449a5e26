"""The registry client requests only what it should: no internal services (SSRF), no redirects to another host, no
foreign answer in an error text, no credentials to a foreign or plain-HTTP token server.

Local HTTP servers stand in for an internal service, a hostile registry and a foreign token server; the portal is
driven through the override form's tag look-up (`/sources/<name>/tags/`), the UI's live registry call.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from registry import client as registry_client
from tests.registries import make_docker_cfg

Answer = tuple[int, dict[str, str], bytes]


class StandIn:
    """A local HTTP(S) server answering every request with `answer(handler)`, recording what it was sent."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], Answer], tls: tuple[str, str] | None = None):
        self.requests: list[dict[str, str]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                stand_in.requests.append({"method": self.command, "path": self.path,
                                          "authorization": self.headers.get("Authorization", "")})
                status, headers, body = answer(self)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandIn]]:
    started: list[StandIn] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], Answer], tls: tuple[str, str] | None = None) -> StandIn:
        server = StandIn(answer, tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
    registry_client.reset()


def json_answer(status: int, data, **headers: str) -> Answer:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode()


INTERNAL_TAGS = {"name": "x", "tags": ["internal-secret-a", "internal-secret-b"]}


def internal_service(handler: BaseHTTPRequestHandler) -> Answer:
    """An internal service that happens to answer every path like a registry would (the worst case)."""
    return json_answer(200, INTERNAL_TAGS)


@pytest.fixture
def tags(client, admin_user, make_source):
    """Look up the tags of module `echo` of a source with the given registry fields, as the override form does."""
    client.force_login(admin_user)

    def look_up(repo: str, **fields) -> dict:
        source = make_source(name=f"s{len(look_up.made)}", repo=repo, **fields)
        look_up.made.append(source)
        response = client.get(f"/sources/{source.name}/tags/", {"module": "echo"})
        assert response.status_code == 200
        return response.json()

    look_up.made = []
    return look_up


# --- internal services ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_production_refuses_loopback_after_dns_resolution(settings, stand_in, tags, host):
    settings.REGISTRY_REFUSE_PRIVATE = True
    internal = stand_in(internal_service)
    answer = tags(f"{host}:{internal.port}/deckhouse/modules", scheme="HTTP")
    assert answer["tags"] == [] and internal.requests == []
    assert answer["error"].startswith(f"the portal does not connect to {host}:{internal.port}: it resolves to ")
    assert "a loopback address; if it is your registry, list it in PORTAL_REGISTRY_ALLOWED_HOSTS" in answer["error"]


@pytest.mark.parametrize(("address", "kind"), [("169.254.169.254", "link-local (cloud metadata services live there)"),
                                               ("10.1.2.3", "private"), ("100.64.0.1", "non-public"),
                                               ("0.0.0.0", "private")])
def test_production_refuses_metadata_private_and_shared_addresses(settings, tags, address, kind):
    settings.REGISTRY_REFUSE_PRIVATE = True
    answer = tags(f"{address}/deckhouse/modules", scheme="HTTP")
    assert answer["error"] == (f"the portal does not connect to {address}:80: it resolves to {address}, a {kind} "
                               "address; if it is your registry, list it in PORTAL_REGISTRY_ALLOWED_HOSTS.")


def test_an_allowed_host_may_be_private_and_development_keeps_working(settings, stand_in, tags):
    internal = stand_in(internal_service)
    settings.REGISTRY_REFUSE_PRIVATE = False  # development: a local registry works
    assert tags(f"127.0.0.1:{internal.port}/deckhouse/modules", scheme="HTTP")["error"] is None
    settings.REGISTRY_REFUSE_PRIVATE = True
    settings.REGISTRY_ALLOWED_HOSTS = [f"127.0.0.1:{internal.port}"]
    assert tags(f"127.0.0.1:{internal.port}/deckhouse/modules", scheme="HTTP")["tags"] == INTERNAL_TAGS["tags"]
    settings.REGISTRY_ALLOWED_HOSTS = ["127.0.0.0/8"]  # a network matches the resolved address
    assert tags(f"localhost:{internal.port}/deckhouse/modules", scheme="HTTP")["error"] is None


def test_the_allow_list_refuses_every_other_host(settings, stand_in, tags):
    internal = stand_in(internal_service)
    settings.REGISTRY_ALLOWED_HOSTS = ["*.registry.example.com"]
    answer = tags(f"127.0.0.1:{internal.port}/deckhouse/modules", scheme="HTTP")
    assert internal.requests == []
    assert answer["error"] == (f"the portal does not connect to 127.0.0.1:{internal.port}: it is not listed in "
                               "PORTAL_REGISTRY_ALLOWED_HOSTS (the registries the portal may request).")


def test_a_redirect_to_another_host_is_not_followed(stand_in, tags):
    internal = stand_in(internal_service)
    hostile = stand_in(lambda h: (302, {"Location": f"http://127.0.0.1:{internal.port}{h.path}"}, b""))
    answer = tags(f"127.0.0.1:{hostile.port}/deckhouse/modules", scheme="HTTP")
    assert internal.requests == [] and len(hostile.requests) == 1
    assert answer["error"] == (f"the registry 127.0.0.1:{hostile.port} answered HTTP 302 with a redirect to another "
                               "host; the portal follows redirects only on the same host.")


def test_a_redirect_on_the_same_host_is_followed(stand_in, tags):
    def moved(handler: BaseHTTPRequestHandler) -> Answer:
        if handler.path.startswith("/moved"):
            return json_answer(200, {"name": "x", "tags": ["main"]})
        return 307, {"Location": "/moved" + handler.path}, b""

    registry = stand_in(moved)
    assert tags(f"127.0.0.1:{registry.port}/deckhouse/modules", scheme="HTTP")["tags"] == ["main"]


def test_error_texts_never_carry_the_body_of_a_foreign_answer(stand_in, tags):
    internal = stand_in(lambda h: json_answer(500, {"errors": [{"code": "DB_PASSWORD_IS_HUNTER2",
                                                                 "message": "internal detail"}]}))
    answer = tags(f"127.0.0.1:{internal.port}/deckhouse/modules", scheme="HTTP")
    assert "HUNTER2" not in answer["error"] and "internal detail" not in answer["error"]
    assert answer["error"].startswith(f"the registry 127.0.0.1:{internal.port} answered HTTP 500")


# --- token servers -------------------------------------------------------------------------------------------------

def token_server(handler: BaseHTTPRequestHandler) -> Answer:
    return json_answer(200, {"token": "issued-token", "expires_in": 300})


def bearer_registry(realm: str) -> Callable[[BaseHTTPRequestHandler], Answer]:
    def answer(handler: BaseHTTPRequestHandler) -> Answer:
        if handler.headers.get("Authorization") == "Bearer issued-token":
            return json_answer(200, {"name": "x", "tags": ["main"]})
        return json_answer(401, {"errors": [{"code": "UNAUTHORIZED"}]},
                           **{"WWW-Authenticate": f'Bearer realm="{realm}",service="registry"'})
    return answer


def test_credentials_go_to_a_token_server_on_another_host_only_when_trusted(settings, stand_in, tags):
    foreign = stand_in(token_server)
    realm = f"http://localhost:{foreign.port}/token"  # another host name than the registry's 127.0.0.1
    registry = stand_in(bearer_registry(realm))
    repo = f"127.0.0.1:{registry.port}/deckhouse/modules"
    cfg = make_docker_cfg(f"127.0.0.1:{registry.port}", "ci", "pull-secret")
    answer = tags(repo, scheme="HTTP", docker_cfg=cfg)
    assert foreign.requests == []
    assert answer["error"] == (
        f"127.0.0.1:{registry.port} named a token server on another host (localhost:{foreign.port}); the portal "
        f'sends the credentials of ModuleSource "s0" to another host only when PORTAL_REGISTRY_TRUSTED_REALMS lists '
        "it (for example PORTAL_REGISTRY_TRUSTED_REALMS=localhost).")

    settings.REGISTRY_TRUSTED_REALMS = ["localhost"]
    assert tags(repo, scheme="HTTP", docker_cfg=cfg)["tags"] == ["main"]
    basic = "Basic " + base64.b64encode(b"ci:pull-secret").decode()
    assert [r["authorization"] for r in foreign.requests] == [basic]


def test_an_anonymous_source_may_use_a_foreign_token_server(stand_in, tags):
    foreign = stand_in(token_server)
    registry = stand_in(bearer_registry(f"http://localhost:{foreign.port}/token"))
    assert tags(f"127.0.0.1:{registry.port}/deckhouse/modules", scheme="HTTP")["tags"] == ["main"]
    assert [r["authorization"] for r in foreign.requests] == [""]


def _self_signed(tmp_path) -> tuple[str, str, str]:
    """(certificate path, key path, PEM) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "cert.pem").write_text(pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), pem


def test_a_plain_http_token_server_of_an_https_registry_is_refused(tmp_path, stand_in, tags):
    cert, key, pem = _self_signed(tmp_path)
    plain = stand_in(token_server)
    registry = stand_in(bearer_registry(f"http://127.0.0.1:{plain.port}/token"), tls=(cert, key))
    cfg = make_docker_cfg(f"127.0.0.1:{registry.port}", "ci", "pull-secret")
    answer = tags(f"127.0.0.1:{registry.port}/deckhouse/modules", scheme="HTTPS", ca=pem, docker_cfg=cfg)
    assert plain.requests == [] and len(registry.requests) == 1
    assert answer["error"] == (f"127.0.0.1:{registry.port} named a plain-HTTP token server (127.0.0.1:{plain.port}): "
                               "the portal asks for tokens of an HTTPS registry only over HTTPS, so credentials "
                               "never travel unencrypted.")
