"""Validation rules from the Deckhouse spec, table-driven: each accepted and rejected value."""

import base64
import json
from datetime import UTC

import pytest
from django.core.exceptions import ValidationError

from overrides import validators
from tests.registries import make_docker_cfg


def _ca_pem() -> str:
    from datetime import datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("value", ["echo", "hello-world", "a", "m0dule-1", "x" * 64])
def test_module_name_accepted(value):
    validators.validate_module_name(value)


@pytest.mark.parametrize(
    "value, words",
    [("", "Enter"), ("Echo", "lowercase"), ("-echo", "starting"), ("echo-", "ending"), ("ec_ho", "lowercase"),
     ("x" * 65, "at most 64"), ("modules", "reserved"), ("ec.ho", "lowercase")],
)
def test_module_name_rejected(value, words):
    with pytest.raises(ValidationError) as exc:
        validators.validate_module_name(value)
    assert words in exc.value.messages[0]


@pytest.mark.parametrize("value", ["main", "pr333", "main-patch-03354", "v1.2.3", "_x", "A" * 128, "a_b.c-d"])
def test_tag_accepted(value):
    validators.validate_image_tag(value)


@pytest.mark.parametrize("value", ["", ".hidden", "-x", "a/b", "a:b", "A" * 129, "tag with space"])
def test_tag_rejected(value):
    with pytest.raises(ValidationError):
        validators.validate_image_tag(value)


@pytest.mark.parametrize("value, seconds", [("15s", 15), ("1m30s", 90), ("2h", 7200), ("1s", 1), ("1h2m3s", 3723)])
def test_scan_interval_accepted(value, seconds):
    assert validators.parse_scan_interval(value).total_seconds() == seconds


@pytest.mark.parametrize(
    "value", ["", "0s", "1d", "1.5h", "30s1m", "10ms", "15", "0h0m0s", "s", "-5s", "99999999999999999999h", "9000h"]
)
def test_scan_interval_rejected(value):
    with pytest.raises(ValidationError) as exc:
        validators.parse_scan_interval(value)
    assert value in exc.value.messages[0]


@pytest.mark.parametrize("value", ["registry.example.com/deckhouse/modules", "127.0.0.1:5000/modules", "host/a/b-c"])
def test_repo_accepted(value):
    validators.validate_repo(value)


@pytest.mark.parametrize("value, words", [("https://registry.example.com/x", "without a scheme"), ("", "Enter"),
                                          ("registry.example.com/UPPER", "lowercase"), ("a b/c", "not a valid")])
def test_repo_rejected(value, words):
    with pytest.raises(ValidationError) as exc:
        validators.validate_repo(value)
    assert words in exc.value.messages[0]


@pytest.mark.parametrize("value, ok", [("HTTP", True), ("HTTPS", True), ("https", False), ("FTP", False)])
def test_scheme(value, ok):
    if ok:
        validators.validate_scheme(value)
    else:
        with pytest.raises(ValidationError):
            validators.validate_scheme(value)


def test_docker_cfg_accepted():
    validators.validate_docker_cfg(make_docker_cfg("registry.example.com", "u", "p"), "registry.example.com/modules")
    validators.validate_docker_cfg("", "registry.example.com/modules")
    userpass = base64.b64encode(json.dumps(
        {"auths": {"registry.example.com:5000": {"username": "u", "password": "p"}}}).encode()).decode()
    validators.validate_docker_cfg(userpass, "registry.example.com:5000/modules")


@pytest.mark.parametrize(
    "cfg, words",
    [("not base64!", "not base64"),
     (base64.b64encode(b"[]").decode(), "auths"),
     (make_docker_cfg("other.example.com", "u", "p"), '"registry.example.com/modules" credentials not found'),
     ],
)
def test_docker_cfg_rejected(cfg, words):
    with pytest.raises(ValidationError) as exc:
        validators.validate_docker_cfg(cfg, "registry.example.com/modules")
    assert words in exc.value.messages[0]


def test_ca():
    validators.validate_ca(_ca_pem())
    validators.validate_ca("")
    with pytest.raises(ValidationError, match="PEM"):
        validators.validate_ca("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")


@pytest.mark.parametrize("value, code", [("9" * 5000 + "s", "too_long"), ("9" * 5000 + "h1s", "too_long"),
                                         ("1" + "0" * 40 + "m", "too_long"), ("0" * 5000 + "15x", "invalid"),
                                         ("0" * 5000 + "s", "too_short")])
def test_any_length_of_digits_is_a_validation_error_not_a_crash(value, code):
    with pytest.raises(ValidationError) as raised:
        validators.parse_scan_interval(value)
    assert raised.value.code == code and len(raised.value.messages[0]) < 200


def test_leading_zeros_do_not_count_as_digits():
    assert validators.parse_scan_interval("0" * 5000 + "15s").total_seconds() == 15


def test_a_cluster_object_with_thousands_of_digits_is_read_back_as_the_default():
    from overrides.cluster.readback import override_spec_from_cr

    spec = override_spec_from_cr({"spec": {"imageTag": "main", "scanInterval": "9" * 5000 + "s"}})
    assert spec.scan_interval == validators.DEFAULT_SCAN_INTERVAL and "cannot use" in spec.note
