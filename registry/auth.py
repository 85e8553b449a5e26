"""Credentials and auth state of the registry client.

- `docker_cfg_credentials()` is the one decoder of a ModuleSource's dockerCfg (base64 of a docker config.json).
  The client uses it, and model validation (through `validate_docker_cfg`) uses it too, so the portal accepts
  exactly the dockerCfg values the client can use.
- `parse_challenges()` reads `WWW-Authenticate` (Basic realm vs Bearer realm/service/scope). oras-py's parser
  takes every `key="value"` pair regardless of the scheme, so it mistakes a Basic realm for a token URL.
- `TokenCache` keeps Bearer tokens per (registry host, repository scope, credentials), thread-safe, with one
  token request per key at a time. oras-py's TokenAuth keeps one token for everything and is not thread-safe.

Credentials come from the ModuleSource only: never from ~/.docker, ~/.netrc or the environment, never on disk.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field

from django.views.decorators.debug import sensitive_variables
from oras.auth.utils import get_basic_auth

from portal.json_input import parse_json

from .errors import DockerCfgError, ErrorKind


def split_repo(repo: str) -> tuple[str, str]:
    """(host[:port], path) of a repository written without scheme, e.g. `registry.example.com:5000/deckhouse/modules`
    -> ("registry.example.com:5000", "deckhouse/modules"). The one parser of repositories: a scheme typed by mistake
    and a trailing slash are ignored; the host is lower-cased (host names are case-insensitive), the path is not."""
    host, _, path = repo.strip().split("://", 1)[-1].rstrip("/").partition("/")
    return host.lower(), path


def registry_host(repo: str) -> str:
    """host[:port] of a repository (see `split_repo`)."""
    return split_repo(repo)[0]


def _b64decode(value: str) -> bytes:
    """Standard base64, tolerant of line breaks and missing padding (what `base64` without `-w0` produces)."""
    compact = "".join(value.split())
    compact += "=" * (-len(compact) % 4)
    return base64.b64decode(compact, validate=True)


@sensitive_variables()
def docker_cfg_credentials(docker_cfg: str, repo: str) -> tuple[str, str] | None:
    """(username, password) for the repository's host from a dockerCfg, or None when dockerCfg is empty (anonymous).

    The dockerCfg is base64 of a docker `config.json`; the entry is `auths[<host[:port]>]` (keys written with a
    scheme or a path, as `docker login` sometimes does, match by their host, like Deckhouse does). The entry's
    `auth` is base64 `user:password`; `username`/`password` fields work too.

    Raises `DockerCfgError` (a `RegistryError` and a `ValueError`): kind `bad_docker_cfg` when the value does not
    decode, kind `credentials_missing` with Deckhouse's message `"<repo>" credentials not found in the dockerCfg`
    when no entry names the host. Messages never contain a secret.
    """
    if not docker_cfg or not docker_cfg.strip():
        return None
    try:
        config = parse_json(_b64decode(docker_cfg), what="dockerCfg")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise DockerCfgError(
            ErrorKind.BAD_DOCKER_CFG,
            "dockerCfg is not base64 of a docker config.json: encode the file with `base64 -w0 config.json`.",
        ) from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        raise DockerCfgError(
            ErrorKind.BAD_DOCKER_CFG, 'dockerCfg has no "auths" section: it must be a docker config.json.'
        )
    host = registry_host(repo)
    entry = auths.get(host)
    if entry is None:
        for key, value in auths.items():
            if isinstance(key, str) and registry_host(key) == host:
                entry = value
                break
    missing = DockerCfgError(ErrorKind.CREDENTIALS_MISSING, f'"{repo}" credentials not found in the dockerCfg')
    if not isinstance(entry, dict):
        raise missing
    if entry.get("auth"):
        try:
            user, sep, password = _b64decode(str(entry["auth"])).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise DockerCfgError(
                ErrorKind.BAD_DOCKER_CFG,
                f'The dockerCfg entry for "{host}" has an "auth" value that is not base64 of user:password.',
            )
        return user, password
    if entry.get("username") or entry.get("password"):
        return str(entry.get("username") or ""), str(entry.get("password") or "")
    # An entry without usable credentials (e.g. only an identitytoken of a credential helper) cannot log in.
    raise missing


@sensitive_variables("docker_cfg")
def validate_docker_cfg(docker_cfg: str, repo: str) -> None:
    """Raise ValueError with a user message when the dockerCfg cannot give credentials for the repo (empty is fine)."""
    docker_cfg_credentials(docker_cfg, repo)


@dataclass(frozen=True)
class Credentials:
    """Decoded credentials of one source for one host, with what each request needs precomputed."""

    username: str
    password: str = field(repr=False)
    basic_header: str = field(repr=False)  # "Basic base64(user:password)"
    fingerprint: str  # cache key part: a hash, so cache keys never hold the secret itself

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message."""
        return tuple(s for s in (self.password, self.basic_header.split(" ", 1)[1]) if len(s) >= 4)


@functools.lru_cache(maxsize=256)
@sensitive_variables()
def credentials_for(docker_cfg: str, repo: str) -> Credentials | None:
    """Cached `docker_cfg_credentials` (sources are polled many times a minute; decoding once is enough)."""
    pair = docker_cfg_credentials(docker_cfg, repo)
    if pair is None:
        return None
    username, password = pair
    return Credentials(
        username=username,
        password=password,
        basic_header="Basic " + get_basic_auth(username, password),
        fingerprint=hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()[:24],
    )


# --- WWW-Authenticate ----------------------------------------------------------------------------------------------

_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
# One item of the header: a scheme name alone (starts a challenge) or a `name=value` parameter.
_ITEM_RE = re.compile(rf'\s*,?\s*({_TOKEN})(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?')


@dataclass
class Challenge:
    """One challenge of a WWW-Authenticate header: `scheme` lower-cased, parameter names lower-cased."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def parse_challenges(header: str | None) -> list[Challenge]:
    """All challenges of a WWW-Authenticate header (requests joins repeated headers with commas)."""
    challenges: list[Challenge] = []
    if not header:
        return challenges
    pos = 0
    current: Challenge | None = None
    while pos < len(header):
        match = _ITEM_RE.match(header, pos)
        if not match or match.end() == pos:
            break
        name, value = match.group(1), match.group(2)
        pos = match.end()
        if value is None:
            current = Challenge(name.lower())
            challenges.append(current)
            continue
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if current is not None:
            current.params[name.lower()] = value
    return challenges


# --- Bearer tokens -------------------------------------------------------------------------------------------------

TokenKey = tuple[str, str, str]  # (registry host, repository scope, credentials fingerprint or "")


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # time.monotonic()


class TokenCache:
    """Bearer tokens per (registry host, repository scope, credentials), shared by all threads.

    Reads take a short lock; a token request for a key holds that key's own lock, so 8 threads that meet the
    same 401 at once make one token request, and other keys are not blocked meanwhile.
    """

    # Refresh a little before the server's expiry, so a token does not expire between our check and its use.
    EXPIRY_MARGIN = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, Token] = {}
        self._fetch_locks: dict[TokenKey, threading.Lock] = {}

    def get(self, key: TokenKey) -> Token | None:
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and token.expires_at <= time.monotonic():
            return None
        return token

    def put(self, key: TokenKey, value: str, expires_in: float) -> Token:
        token = Token(value, time.monotonic() + max(expires_in - self.EXPIRY_MARGIN, 1.0))
        with self._lock:
            self._tokens[key] = token
        return token

    def discard(self, key: TokenKey, stale: Token | None) -> None:
        """Forget `stale` (refused by the registry), unless another thread already replaced it."""
        if stale is None:
            return
        with self._lock:
            if self._tokens.get(key) is stale:
                self._tokens.pop(key, None)

    def fetch_lock(self, key: TokenKey) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._fetch_locks.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)
