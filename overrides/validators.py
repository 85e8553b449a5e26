"""Validation rules from Deckhouse's behaviour (../shared/spec/deckhouse-mpo.md), one function per rule.

Each validator raises django.core.exceptions.ValidationError with a message a user can act on. The model
fields, forms, serializers and the cluster importer all use these, so the rules cannot drift.
"""

import re
from datetime import timedelta

from cryptography import x509
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

MODULE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MODULE_NAME_MAX = 64
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SCAN_INTERVAL_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
REPO_RE = re.compile(r"^[A-Za-z0-9.-]+(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
DEFAULT_SCAN_INTERVAL = "15s"
# Far beyond any useful interval, and small enough that next-check arithmetic never overflows a datetime.
MAX_SCAN_INTERVAL = timedelta(days=366)
# Digits of one unit that can still be within MAX_SCAN_INTERVAL (31,622,400 s): more are too long before int()
# sees them (Python refuses to convert more than 4300 digits with a ValueError, not a validation error).
_MAX_UNIT_DIGITS = 9


def validate_module_name(value: str) -> None:
    """metadata.name of an MPO is the module name: DNS-label-like, at most 64 characters, not `modules`."""
    if not value:
        raise ValidationError("Enter a module name.", code="required")
    if len(value) > MODULE_NAME_MAX:
        raise ValidationError(
            f"Module name is {len(value)} characters long; at most {MODULE_NAME_MAX} are allowed.", code="too_long"
        )
    if value == "modules":
        raise ValidationError('"modules" is reserved by Deckhouse and cannot be a module name.', code="reserved")
    if not MODULE_NAME_RE.match(value):
        raise ValidationError(
            f'"{value}" is not a valid module name: use lowercase letters, digits and "-", '
            "starting and ending with a letter or digit.",
            code="invalid",
        )


def validate_source_name(value: str) -> None:
    """ModuleSource names are Kubernetes object names (DNS subdomain, lowercase)."""
    if not value:
        raise ValidationError("Enter a source name.", code="required")
    if len(value) > 253 or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", value):
        raise ValidationError(
            f'"{value}" is not a valid source name: use lowercase letters, digits, "-" and ".", '
            "starting and ending with a letter or digit.",
            code="invalid",
        )


def validate_image_tag(value: str) -> None:
    """An OCI tag: up to 128 characters of [A-Za-z0-9_.-], not starting with "." or "-"."""
    if not value:
        raise ValidationError("Enter an image tag, for example main or pr333.", code="required")
    if not IMAGE_TAG_RE.match(value):
        raise ValidationError(
            f'"{value}" is not a valid image tag: up to 128 letters, digits, "_", "." and "-", '
            'not starting with "." or "-".',
            code="invalid",
        )


def parse_scan_interval(value: str) -> timedelta:
    """The one parser of scanInterval (`15s`, `1m30s`, `2h`), as Deckhouse reads it; at least 1s, at most a year.
    Any string gives an interval or a ValidationError, whatever its length."""
    match = SCAN_INTERVAL_RE.match(value or "")
    shown = value if len(value or "") <= 40 else f"{value[:20]}…({len(value)} characters)"
    if not value or not match:
        raise ValidationError(
            f'"{shown}" is not a valid scan interval: use hours, minutes and seconds in that order, '
            "for example 15s, 1m30s or 2h.",
            code="invalid",
        )
    units = [g.lstrip("0") if g else "" for g in match.groups()]
    if any(len(unit) > _MAX_UNIT_DIGITS for unit in units):
        interval = MAX_SCAN_INTERVAL * 2
    else:
        hours, minutes, seconds = (int(unit or "0") for unit in units)
        interval = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if interval > MAX_SCAN_INTERVAL:
        raise ValidationError(
            f'Scan interval "{shown}" is longer than a year; use a shorter one, for example 24h.', code="too_long"
        )
    if interval < timedelta(seconds=1):
        raise ValidationError(
            f'Scan interval "{shown}" is zero: Deckhouse would stop checking the registry. Use at least 1s.',
            code="too_short",
        )
    return interval


def validate_scan_interval(value: str) -> None:
    parse_scan_interval(value)


def validate_repo(value: str) -> None:
    """A registry repository without a scheme: host[:port]/path."""
    if not value:
        raise ValidationError("Enter the registry repository, for example registry.example.com/deckhouse/modules.")
    if "://" in value:
        raise ValidationError(
            f'Write the repository without a scheme ("{value.split("://", 1)[1]}") and choose HTTP or HTTPS '
            "in the scheme field.",
            code="scheme_in_repo",
        )
    if not REPO_RE.match(value):
        raise ValidationError(
            f'"{value}" is not a valid repository: use host[:port]/path with lowercase path components, '
            "for example registry.example.com/deckhouse/modules.",
            code="invalid",
        )


def validate_scheme(value: str) -> None:
    if value not in ("HTTP", "HTTPS"):
        raise ValidationError(f'Scheme must be HTTP or HTTPS, not "{value}".', code="invalid")


def validate_ca(value: str) -> None:
    """The CA must be a PEM certificate (or empty)."""
    if not value:
        return
    try:
        x509.load_pem_x509_certificates(value.strip().encode())
    except ValueError:
        raise ValidationError(
            "The CA is not a PEM certificate: paste the registry's root CA, "
            "from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----.",
            code="invalid",
        ) from None


@sensitive_variables("docker_cfg")
def validate_docker_cfg(docker_cfg: str, repo: str) -> None:
    """dockerCfg (base64 of a docker config.json) must decode and hold credentials for the repo's host."""
    if not docker_cfg:
        return
    from registry.auth import DockerCfgError, validate_docker_cfg

    try:
        validate_docker_cfg(docker_cfg, repo)
    except DockerCfgError as exc:
        raise ValidationError(exc.message, code="invalid") from None
