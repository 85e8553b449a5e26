"""Typed registry failures and the result types of the registry client.

Every failure a look-up can meet is a `RegistryError` with a `kind` from `ErrorKind` and a `message` a user can act
on. Messages never contain a credential or a token: they are built from the host, the repository, the reference and
(scrubbed) registry error codes only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class ErrorKind(enum.StrEnum):
    """What went wrong; a `str`, so `error.kind == "timeout"` works and it serializes as a plain string."""

    TAG_NOT_FOUND = "tag_not_found"
    REPOSITORY_NOT_FOUND = "repository_not_found"
    AUTH_FAILED = "auth_failed"
    CREDENTIALS_MISSING = "credentials_missing"
    BAD_DOCKER_CFG = "bad_docker_cfg"
    TLS_FAILED = "tls_failed"
    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    RATE_LIMITED = "rate_limited"
    REGISTRY_ERROR = "registry_error"
    DESTINATION_REFUSED = "destination_refused"  # a host or address the portal may not request (registry.destinations)


@dataclass(eq=True)
class RegistryError(Exception):
    """A registry failure: `kind` (an `ErrorKind` value), a user-facing `message`, the HTTP `status` when the
    registry answered, and `retry_after` (UTC) when it asked us to come back later.

    It is both a value (carried in `DigestLookup.error` etc.) and an exception (raised internally and by
    `docker_cfg_credentials`).
    """

    kind: str
    message: str
    status: int | None = None
    retry_after: datetime | None = None

    def __post_init__(self) -> None:
        # Exception.args must hold the constructor arguments, or pickling (django-q2 stores task results
        # pickled) cannot rebuild the object.
        Exception.__init__(self, self.kind, self.message, self.status, self.retry_after)

    def __str__(self) -> str:
        return self.message

    __hash__ = Exception.__hash__


class DockerCfgError(RegistryError, ValueError):
    """The dockerCfg cannot give credentials for the repository (kind `credentials_missing` or `bad_docker_cfg`).

    A `ValueError` too, so model validation can catch it without knowing the registry package.
    """


@dataclass
class DigestLookup:
    """The digest of one image reference, or why it could not be read."""

    reference: str
    digest: str | None = None
    error: RegistryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.digest is not None


@dataclass
class ModuleListing:
    """Module names discovered in a ModuleSource repository (its tags), or why discovery failed.

    `truncated` is True when the limit (1500 modules) stopped the listing early.
    """

    modules: list[str] = field(default_factory=list)
    error: RegistryError | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class TagListing:
    """Tags of one module repository, or why they could not be listed."""

    tags: list[str] = field(default_factory=list)
    error: RegistryError | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None
