"""The test registries and servers of tests/registries/ do what the other tests rely on them for."""

import base64
import hashlib
import json
import socket

import bcrypt
import pytest
import requests

from tests.fixtures.real_servers import require_binaries
from tests.registries import ACCEPT, CountingProxy, htpasswd_line, make_docker_cfg


def test_pushes_in_both_media_types_store_what_they_report(registry):
    module = registry.unique()
    oci = registry.push(module, "oci", b"layer")
    docker = registry.push(module, "docker", b"layer", media_type="docker")
    path = f"{registry.repo.split('/', 1)[1]}/{module}"
    for tag, digest in (("oci", oci), ("docker", docker)):
        assert "sha256:" + hashlib.sha256(registry.manifest(path, tag)).hexdigest() == digest
    assert oci != docker


def test_publish_module_makes_a_tag_of_the_repository_itself(registry):
    name = registry.unique()
    registry.publish_module(name)
    tags = requests.get(f"{registry.url}/v2/{registry.repo.split('/', 1)[1]}/tags/list", timeout=5).json()["tags"]
    assert name in tags


def test_basic_registry_refuses_anonymous_and_takes_its_credentials(registry_basic):
    url = f"{registry_basic.url}/v2/"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=(registry_basic.username, registry_basic.password), timeout=5).status_code == 200


def test_tls_registry_is_trusted_with_its_ca_only(registry_tls):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registry_tls.url}/v2/", timeout=5)
    assert requests.get(f"{registry_tls.url}/v2/", verify=registry_tls.ca_path, timeout=5).status_code == 200


def test_token_server_scopes_a_token_to_one_repository(registry_token, token_server):
    module = registry_token.unique()
    registry_token.push(module, "v1")
    path = f"{registry_token.repo.split('/', 1)[1]}/{module}"
    answer = requests.get(f"{token_server.realm}?service=x&scope=repository:{path}:pull",
                          auth=tuple(next(iter(token_server.users.items()))), timeout=5)
    token = answer.json()["token"]
    manifests = f"{registry_token.url}/v2/{{}}/manifests/v1"
    headers = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
    assert requests.head(manifests.format(path), headers=headers, timeout=5).status_code == 200
    assert requests.head(manifests.format(path + "-other"), headers=headers, timeout=5).status_code == 401
    assert f"repository:{path}:pull" in token_server.scopes_issued()
    anonymous = requests.get(f"{token_server.realm}?scope=repository:{path}:pull", timeout=5).json()["token"]
    claims = json.loads(base64.urlsafe_b64decode(anonymous.split(".")[1] + "=="))
    assert claims["access"] == []


def test_fault_proxy_answers_the_fault_then_forwards_again(registry, fault_proxy):
    module = registry.unique()
    registry.push(module, "v1")
    url = f"{fault_proxy.url}/v2/{fault_proxy.repo.split('/', 1)[1]}/{module}/manifests/v1"
    fault_proxy.set_fault(429, retry_after="120")
    answer = requests.head(url, headers={"Accept": ACCEPT}, timeout=5)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "120")
    fault_proxy.clear()
    assert requests.head(url, headers={"Accept": ACCEPT}, timeout=5).status_code == 200
    assert fault_proxy.hits == 2


def test_fault_proxy_paginates_tag_lists_with_link_headers(registry, fault_proxy):
    module = registry.unique()
    for tag in ("a", "b", "c"):
        registry.push(module, tag)
    path = f"/v2/{fault_proxy.repo.split('/', 1)[1]}/{module}/tags/list"
    first = requests.get(f"{fault_proxy.url}{path}?n=2", timeout=5)
    assert first.json()["tags"] == ["a", "b"]
    next_page = first.headers["Link"].split(">")[0].lstrip("<")
    second = requests.get(fault_proxy.url + next_page, timeout=5)
    assert second.json()["tags"] == ["c"] and "Link" not in second.headers


def test_counting_proxy_records_each_request(registry):
    module = registry.unique()
    registry.push(module, "v1")
    proxy = CountingProxy(registry)
    try:
        url = f"http://{proxy.host}/v2/{proxy.repo.split('/', 1)[1]}/{module}/manifests/v1"
        for _ in range(3):
            assert requests.head(url, headers={"Accept": ACCEPT}, timeout=5).status_code == 200
        assert proxy.count(f"/{module}/manifests/v1") == 3
    finally:
        proxy.close()


def test_hanging_server_accepts_and_never_answers(hanging_server):
    host, port = hanging_server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=2) as conn:
        conn.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(1)


def test_credentials_are_what_registries_and_deckhouse_read():
    user, _, hashed = htpasswd_line("robot", "pa55").partition(":")
    assert user == "robot" and bcrypt.checkpw(b"pa55", hashed.encode())
    config = json.loads(base64.b64decode(make_docker_cfg("r.example.com", "robot", "pa55")))
    assert base64.b64decode(config["auths"]["r.example.com"]["auth"]) == b"robot:pa55"


def test_a_missing_binary_fails_with_its_install_hint_unless_the_run_opts_out(request, monkeypatch):
    monkeypatch.delenv("PORTAL_TEST_NO_REAL_SERVERS", raising=False)
    if request.config.getoption("--no-real-servers"):
        pytest.skip("this run opted out")
    with pytest.raises(pytest.fail.Exception, match="apt-get install thing"):
        require_binaries(request.config, ["/nonexistent/thing"], "thing", "apt-get install thing")
    monkeypatch.setenv("PORTAL_TEST_NO_REAL_SERVERS", "1")
    with pytest.raises(pytest.skip.Exception, match="apt-get install thing"):
        require_binaries(request.config, ["/nonexistent/thing"], "thing", "apt-get install thing")
    require_binaries(request.config, [__file__], "this file", "")
