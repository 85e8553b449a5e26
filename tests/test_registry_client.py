"""registry.client against real distribution registries (tests/registries/): digests, discovery, tags,
auth (Basic, Bearer), TLS, and every failure caused for real. No database needed."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from registry import client, failures, transport
from registry.auth import docker_cfg_credentials, parse_challenges, validate_docker_cfg
from registry.client import (
    DigestLookup,
    DockerCfgError,
    ErrorKind,
    RegistryError,
    discover_modules,
    image_reference,
    list_tags,
    resolve_digest,
)
from tests.registries import make_ca, make_docker_cfg

DEFAULT_PATH = "deckhouse/modules"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def path_of(source) -> str:
    return source.repo.split("/", 1)[1]


@pytest.fixture
def fresh_client():
    """No cached sessions, tokens or credentials before and after the test."""
    client.reset()
    yield
    client.reset()


# --- references and digests ----------------------------------------------------------------------------------------

def test_image_reference():
    assert image_reference("r.example.io:5000/deckhouse/modules", "foo", "v1") == \
        "r.example.io:5000/deckhouse/modules/foo:v1"


def test_digest_is_sha256_of_the_manifest_bytes(registry):
    module = registry.unique()
    pushed = registry.push(module, "v1", "payload one")
    lookup = resolve_digest(registry.source(), module, "v1")
    assert lookup.ok, lookup.error
    assert lookup.reference == f"{registry.repo}/{module}:v1"
    raw = registry.manifest(f"{DEFAULT_PATH}/{module}", "v1")
    assert lookup.digest == pushed == sha256(raw)
    if shutil.which("skopeo"):  # an independent client reads the same bytes
        out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--no-creds",
                              f"docker://{registry.repo}/{module}:v1"], capture_output=True, timeout=30, check=True)
        assert sha256(out.stdout) == lookup.digest


def test_repush_changes_the_digest_and_identical_content_keeps_it(registry):
    module = registry.unique()
    source = registry.source()
    first = registry.push(module, "main", "version 1")
    assert resolve_digest(source, module, "main").digest == first
    second = registry.push(module, "main", "version 2")
    assert second != first
    assert resolve_digest(source, module, "main").digest == second
    assert registry.push(module, "main", "version 2") == second
    assert resolve_digest(source, module, "main").digest == second


@pytest.mark.parametrize("media_type", ["oci", "docker"])
def test_oci_and_docker_manifests(registry, media_type):
    module = registry.unique()
    pushed = registry.push(module, "v1", f"{media_type} content", media_type=media_type)
    raw = registry.manifest(f"{DEFAULT_PATH}/{module}", "v1")
    assert json.loads(raw)["mediaType"].startswith(
        "application/vnd.oci" if media_type == "oci" else "application/vnd.docker")
    lookup = resolve_digest(registry.source(), module, "v1")
    assert lookup.digest == pushed == sha256(raw)


def test_a_module_the_source_lists_but_nobody_pushed_is_a_missing_repository(registry):
    name = registry.unique("listed")
    registry.publish_module(name)  # discovery finds it among the source's tags
    lookup = resolve_digest(registry.source(), name, "main")
    assert lookup.error.kind == ErrorKind.REPOSITORY_NOT_FOUND
    assert f"the repository {registry.repo}/{name} does not exist" in lookup.error.message
    assert "has no module" not in lookup.error.message


def test_unknown_tag_and_unknown_module(registry):
    module = registry.unique()
    registry.push(module, "v1", "x")
    missing_tag = resolve_digest(registry.source(), module, "nope")
    assert missing_tag.error.kind == ErrorKind.TAG_NOT_FOUND
    assert f"{registry.repo}/{module}:nope" in missing_tag.error.message
    assert f'the repository {registry.repo}/{module} has no tag "nope"' in missing_tag.error.message
    assert not missing_tag.ok and missing_tag.digest is None
    missing_repo = resolve_digest(registry.source(), registry.unique("ghost"), "v1")
    assert missing_repo.error.kind == ErrorKind.REPOSITORY_NOT_FOUND
    assert missing_repo.reference in missing_repo.error.message
    invalid = resolve_digest(registry.source(), module, "bad/tag")
    assert invalid.error.kind == ErrorKind.TAG_NOT_FOUND


# --- discovery and tags --------------------------------------------------------------------------------------------

def test_discovery_paginates_and_skips_modules_and_long_names(registry, fault_proxy):
    path = f"{registry.unique('disc')}/modules"
    repo = f"{registry.host}/{path}"
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for name in [*names, "modules", "x" * 65, "y" * 64]:
        registry.publish_module(name, repo=repo)
    # Through the proxy, which paginates like distribution 3 (2.8 ignores `n`): 8 tags, 3 per page.
    listing = discover_modules(fault_proxy.source(repo=f"{fault_proxy.host}/{path}"), page_size=3)
    assert listing.ok, listing.error
    assert listing.modules == sorted([*names, "y" * 64])
    assert fault_proxy.hits == 3
    assert not listing.truncated
    limited = discover_modules(registry.source(repo=repo), page_size=2, limit=3)
    assert limited.truncated and len(limited.modules) == 3


def test_discovery_of_a_missing_repository(registry):
    listing = discover_modules(registry.source(repo=f"{registry.host}/{registry.unique('none')}/modules"))
    assert listing.error.kind == ErrorKind.REPOSITORY_NOT_FOUND
    assert listing.modules == []


def test_list_tags_paginates(registry, fault_proxy):
    module = registry.unique()
    tags = [f"v1.{i}" for i in range(5)]
    for tag in tags:
        registry.push(module, tag, f"content {tag}")
    listing = list_tags(fault_proxy.source(), module, page_size=2)
    assert listing.ok and listing.tags == tags
    assert fault_proxy.hits == 3
    direct = list_tags(registry.source(), module)  # distribution 2.8 itself answers in one page
    assert sorted(direct.tags) == tags
    assert list_tags(registry.source(), registry.unique("ghost")).error.kind == ErrorKind.REPOSITORY_NOT_FOUND


# --- failures, each caused for real --------------------------------------------------------------------------------

def test_stopped_registry_is_connection_refused_fast_and_recovers(registry_factory):
    reg = registry_factory()
    module = reg.unique()
    digest = reg.push(module, "v1", "x")
    source = reg.source()
    assert resolve_digest(source, module, "v1").digest == digest  # a pooled connection exists now
    with reg.down():
        started = time.monotonic()
        lookup = resolve_digest(source, module, "v1")
        assert time.monotonic() - started < 2
        assert lookup.error.kind == ErrorKind.CONNECTION_REFUSED
        assert reg.host in lookup.error.message
        assert discover_modules(source).error.kind == ErrorKind.CONNECTION_REFUSED
    assert resolve_digest(source, module, "v1").digest == digest


def test_a_registry_that_never_answers_times_out_in_bounded_time(hanging_server):
    started = time.monotonic()
    lookup = resolve_digest(hanging_server.source(), "foo", "v1", timeout=(1, 1))
    assert time.monotonic() - started < 3
    assert lookup.error.kind == ErrorKind.TIMEOUT
    listing = discover_modules(hanging_server.source(), timeout=(1, 0.5))
    assert listing.error.kind == ErrorKind.TIMEOUT


def test_timeouts_come_from_django_settings(hanging_server):
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - is Django configured?
    except Exception:
        pytest.skip("Django settings are not configured")
    from django.test import override_settings

    with override_settings(REGISTRY_CONNECT_TIMEOUT=1, REGISTRY_READ_TIMEOUT=0.5):
        assert transport.timeouts() == (1.0, 0.5)
        started = time.monotonic()
        assert resolve_digest(hanging_server.source(), "foo", "v1").error.kind == ErrorKind.TIMEOUT
        assert time.monotonic() - started < 2.5


def test_rate_limits_and_server_errors(registry, fault_proxy):
    module = registry.unique()
    digest = registry.push(module, "v1", "x")
    source = fault_proxy.source()
    assert resolve_digest(source, module, "v1").digest == digest

    fault_proxy.set_fault(429, retry_after="120")
    error = resolve_digest(source, module, "v1").error
    assert error.kind == ErrorKind.RATE_LIMITED and error.status == 429
    expected = datetime.now(UTC) + timedelta(seconds=120)
    assert abs((error.retry_after - expected).total_seconds()) < 5
    assert error.retry_after.tzinfo is not None and "UTC" in error.message
    assert f"{error.retry_after:%H:%M:%S}" in error.message

    when = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    fault_proxy.set_fault(503, retry_after=format_datetime(when, usegmt=True))
    error = discover_modules(source).error
    assert error.kind == ErrorKind.RATE_LIMITED and error.status == 503 and error.retry_after == when

    fault_proxy.set_fault(503)
    error = resolve_digest(source, module, "v1").error
    assert error.kind == ErrorKind.REGISTRY_ERROR and error.status == 503

    fault_proxy.set_fault(500)
    lookup = resolve_digest(source, module, "v1")
    assert lookup.error.kind == ErrorKind.REGISTRY_ERROR and lookup.error.status == 500
    tags = list_tags(source, module)
    assert tags.error.kind == ErrorKind.REGISTRY_ERROR and "UNAVAILABLE" in tags.error.message

    fault_proxy.clear()
    assert resolve_digest(source, module, "v1").digest == digest


def test_unexpected_exceptions_never_escape(registry, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(client, "request", boom)
    lookup = resolve_digest(registry.source(), "foo", "v1")
    assert lookup.error.kind == ErrorKind.REGISTRY_ERROR and "RuntimeError" in lookup.error.message
    assert discover_modules(registry.source()).error.kind == ErrorKind.REGISTRY_ERROR


# --- Basic auth and dockerCfg --------------------------------------------------------------------------------------

def test_basic_auth(registry_basic):
    module = registry_basic.unique()
    digest = registry_basic.push(module, "v1", "secret content")
    assert resolve_digest(registry_basic.source(), module, "v1").digest == digest
    path = f"{registry_basic.unique('disc')}/modules"
    registry_basic.publish_module("private", repo=f"{registry_basic.host}/{path}")
    assert discover_modules(registry_basic.source(repo=f"{registry_basic.host}/{path}")).modules == ["private"]
    fields_style = make_docker_cfg(registry_basic.host, registry_basic.username, registry_basic.password, "fields")
    assert resolve_digest(registry_basic.source(docker_cfg=fields_style), module, "v1").digest == digest


def test_basic_auth_failures_name_the_host_and_never_the_secret(registry_basic):
    module = registry_basic.unique()
    registry_basic.push(module, "v1", "x")
    host = registry_basic.host

    wrong = resolve_digest(registry_basic.source(docker_cfg=make_docker_cfg(host, registry_basic.username,
                                                                            "wrong-password-123")), module, "v1")
    assert wrong.error.kind == ErrorKind.AUTH_FAILED and wrong.error.status == 401
    assert host in wrong.error.message and "dockerCfg" in wrong.error.message
    assert "wrong-password-123" not in wrong.error.message

    anonymous = resolve_digest(registry_basic.source(docker_cfg=""), module, "v1")
    assert anonymous.error.kind == ErrorKind.AUTH_FAILED and "dockerCfg" in anonymous.error.message

    other_host = make_docker_cfg("other.example.io", "u", "p")
    missing = resolve_digest(registry_basic.source(docker_cfg=other_host), module, "v1")
    assert missing.error.kind == ErrorKind.CREDENTIALS_MISSING
    assert missing.error.message == f'"{registry_basic.repo}" credentials not found in the dockerCfg'

    bad = discover_modules(registry_basic.source(docker_cfg="not base64 at all!"))
    assert bad.error.kind == ErrorKind.BAD_DOCKER_CFG

    for result in (wrong, anonymous, missing, bad):
        assert registry_basic.password not in result.error.message
        assert base64.b64encode(registry_basic.password.encode()).decode() not in result.error.message


def test_docker_cfg_decoding():
    host = "registry.example.io:5000"
    repo = f"{host}/deckhouse/modules"
    assert docker_cfg_credentials("", repo) is None
    assert docker_cfg_credentials(make_docker_cfg(host, "u", "p:with:colons"), repo) == ("u", "p:with:colons")
    assert docker_cfg_credentials(make_docker_cfg(host, "u", "p", "fields"), repo) == ("u", "p")
    with_scheme = base64.b64encode(json.dumps(
        {"auths": {f"https://{host}/v1/": {"auth": base64.b64encode(b"a:b").decode()}}}).encode()).decode()
    assert docker_cfg_credentials(with_scheme, repo) == ("a", "b")
    wrapped = "\n".join(with_scheme[i:i + 76] for i in range(0, len(with_scheme), 76))  # `base64` without -w0
    assert docker_cfg_credentials(wrapped, repo) == ("a", "b")

    with pytest.raises(DockerCfgError) as missing:
        docker_cfg_credentials(make_docker_cfg("registry.example.io", "u", "p"), repo)  # same host, other port
    assert missing.value.kind == ErrorKind.CREDENTIALS_MISSING and isinstance(missing.value, ValueError)
    assert str(missing.value) == f'"{repo}" credentials not found in the dockerCfg'
    for bad in ("%%%", base64.b64encode(b"[1]").decode(),
                base64.b64encode(json.dumps({"auths": {host: {"auth": "bm9jb2xvbg=="}}}).encode()).decode()):
        with pytest.raises(DockerCfgError) as error:
            validate_docker_cfg(bad, repo)
        assert error.value.kind == ErrorKind.BAD_DOCKER_CFG


def test_www_authenticate_parsing():
    basic, = parse_challenges('Basic realm="mpo test"')
    assert basic.scheme == "basic" and basic.realm == "mpo test"
    bearer, = parse_challenges('Bearer realm="https://auth.example.io/token",service="registry.example.io",'
                               'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert (bearer.realm, bearer.service, bearer.scope) == (
        "https://auth.example.io/token", "registry.example.io", "repository:a/b:pull,push")
    first, second = parse_challenges('Bearer realm="https://a/t", service=svc, Basic realm="x \\"y\\""')
    assert first.service == "svc" and second.scheme == "basic" and second.realm == 'x "y"'
    assert parse_challenges(None) == []


def test_results_pickle_and_compare():
    error = RegistryError(ErrorKind.RATE_LIMITED, "later", 429, datetime.now(UTC))
    lookup = DigestLookup("r/m:t", None, error)
    again = pickle.loads(pickle.dumps(lookup))
    assert again == lookup and again.error.retry_after == error.retry_after and not again.ok
    assert failures.retry_after("garbage") is None
    assert failures.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") >= datetime.now(UTC) - timedelta(seconds=1)


# --- TLS -----------------------------------------------------------------------------------------------------------

def test_tls_with_the_source_ca(registry_tls):
    module = registry_tls.unique()
    digest = registry_tls.push(module, "v1", "tls content")
    assert resolve_digest(registry_tls.source(), module, "v1").digest == digest

    no_ca = resolve_digest(registry_tls.source(ca=""), module, "v1")
    assert no_ca.error.kind == ErrorKind.TLS_FAILED and "ca field" in no_ca.error.message

    other_ca, _ = make_ca("some other CA")
    from cryptography.hazmat.primitives import serialization

    wrong_ca = resolve_digest(
        registry_tls.source(ca=other_ca.public_bytes(serialization.Encoding.PEM).decode()), module, "v1")
    assert wrong_ca.error.kind == ErrorKind.TLS_FAILED and "CA in the ca field" in wrong_ca.error.message

    plain_http = resolve_digest(registry_tls.source(scheme="HTTP"), module, "v1")
    assert plain_http.error.kind == ErrorKind.REGISTRY_ERROR and plain_http.error.status == 400
    assert "HTTPS" in plain_http.error.message


def test_https_against_a_plain_http_registry(registry):
    lookup = resolve_digest(registry.source(scheme="HTTPS"), "foo", "v1")
    assert lookup.error.kind == ErrorKind.TLS_FAILED and "HTTP" in lookup.error.message


# --- Bearer tokens -------------------------------------------------------------------------------------------------

def test_bearer_tokens_per_repository_scope(registry_token, token_server, fresh_client):
    a, b = registry_token.unique("a"), registry_token.unique("b")
    digest_a, digest_b = registry_token.push(a, "v1", "a"), registry_token.push(b, "v1", "b")
    source = registry_token.source()
    before = len(token_server.issued)
    for _ in range(3):
        assert resolve_digest(source, a, "v1").digest == digest_a
        assert resolve_digest(source, b, "v1").digest == digest_b
    assert list_tags(source, a).tags == ["v1"]  # the same scope: no new token
    issued = token_server.issued[before:]
    assert issued == [(registry_token.username, f"repository:{DEFAULT_PATH}/{a}:pull"),
                      (registry_token.username, f"repository:{DEFAULT_PATH}/{b}:pull")]


def test_a_token_of_another_scope_is_refreshed_on_401(registry_token, token_server, fresh_client):
    a, b = registry_token.unique("a"), registry_token.unique("b")
    registry_token.push(a, "v1", "a")
    digest_b = registry_token.push(b, "v1", "b")
    source = registry_token.source()
    assert resolve_digest(source, a, "v1").ok
    target = transport.target_for(source)
    key_a = (registry_token.host, f"repository:{DEFAULT_PATH}/{a}:pull", target.creds.fingerprint)
    key_b = (registry_token.host, f"repository:{DEFAULT_PATH}/{b}:pull", target.creds.fingerprint)
    transport.TOKENS.put(key_b, transport.TOKENS.get(key_a).value, 300)  # a's token where b's belongs
    before = len(token_server.issued)
    assert resolve_digest(source, b, "v1").digest == digest_b
    assert token_server.scopes_issued()[before:] == [f"repository:{DEFAULT_PATH}/{b}:pull"]


def test_an_expired_token_is_refreshed_on_401(registry_token, token_server, fresh_client):
    module = registry_token.unique()
    digest = registry_token.push(module, "v1", "x")
    source = registry_token.source()
    token_server.registry_ttl = 2  # the registry refuses these tokens after ~2 s; expires_in still says 300
    try:
        assert resolve_digest(source, module, "v1").digest == digest
        time.sleep(3)
        token_server.registry_ttl = None
        before = len(token_server.issued)
        assert resolve_digest(source, module, "v1").digest == digest
        assert len(token_server.issued) == before + 1
    finally:
        token_server.registry_ttl = None


def test_bearer_auth_failures(registry_token, fresh_client):
    module = registry_token.unique()
    registry_token.push(module, "v1", "x")
    host = registry_token.host
    wrong = resolve_digest(registry_token.source(docker_cfg=make_docker_cfg(host, registry_token.username,
                                                                            "not-it-456")), module, "v1")
    assert wrong.error.kind == ErrorKind.AUTH_FAILED and host in wrong.error.message
    assert "token server" in wrong.error.message and "not-it-456" not in wrong.error.message
    anonymous = resolve_digest(registry_token.source(docker_cfg=""), module, "v1")
    assert anonymous.error.kind == ErrorKind.AUTH_FAILED and "dockerCfg" in anonymous.error.message


def test_concurrent_lookups_share_one_token_per_scope(registry_token, token_server, fresh_client):
    modules = [registry_token.unique(f"c{i}") for i in range(4)]
    digests = {m: registry_token.push(m, "v1", m) for m in modules}
    source = registry_token.source()
    before = len(token_server.issued)
    barrier = threading.Barrier(8)

    def work(i: int) -> list[bool]:
        barrier.wait()
        results = []
        for j in range(25):
            module = modules[(i + j) % len(modules)]
            results.append(resolve_digest(source, module, "v1").digest == digests[module])
        return results

    with ThreadPoolExecutor(8) as pool:
        results = [ok for chunk in pool.map(work, range(8)) for ok in chunk]
    assert len(results) == 200 and all(results)
    assert sorted(token_server.scopes_issued()[before:]) == sorted(
        f"repository:{DEFAULT_PATH}/{m}:pull" for m in modules)


# --- management command --------------------------------------------------------------------------------------------

def test_registry_check_command(registry, monkeypatch, capsys):
    pytest.importorskip("django")
    from django.core.management import call_command

    from registry.management.commands import registry_check

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018
    except Exception:
        pytest.skip("Django settings are not configured")
    path = f"{registry.unique('cmd')}/modules"
    repo = f"{registry.host}/{path}"
    registry.publish_module("hello", repo=repo)
    digest = registry.push("hello", "v1", "cmd", repo=repo)
    monkeypatch.setattr(registry_check, "load_source", lambda name: registry.source(name=name, repo=repo))

    call_command(registry_check.Command(), "src")
    assert "hello" in capsys.readouterr().out
    call_command(registry_check.Command(), "src", "hello", "v1")
    assert f"{repo}/hello:v1 {digest}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        call_command(registry_check.Command(), "src", "hello", "nope")
    assert exit_info.value.code == 1
    assert "tag_not_found" in capsys.readouterr().err


@pytest.mark.django_db
def test_registry_check_command_with_the_model(registry, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    models = pytest.importorskip("overrides.models")
    with pytest.raises(CommandError, match='ModuleSource "nosuch" does not exist'):
        call_command("registry_check", "nosuch")
    path = f"{registry.unique('cmdm')}/modules"
    registry.publish_module("world", repo=f"{registry.host}/{path}")
    models.ModuleSource.objects.create(name="cmd-src", repo=f"{registry.host}/{path}", scheme="HTTP")
    call_command("registry_check", "cmd-src")
    assert "world" in capsys.readouterr().out
