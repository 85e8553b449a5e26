"""Bounded, authenticated HTTP to registries: pooled sessions per endpoint, the auth dance, error mapping.

Internal to the `registry` package: `registry.client` is the public API. Everything here raises `RegistryError`
(never a bare exception) and every request is bounded by connect/read timeouts; no retries, no sleeping.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import oras.provider
import requests
import requests.certs
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter

from portal.json_input import parse_json

from . import defaults, destinations
from .auth import Challenge, Credentials, Token, TokenCache, credentials_for, parse_challenges, split_repo
from .defaults import setting
from .errors import ErrorKind, RegistryError
from .failures import auth_error, connection_error, status_error, tls_error

logger = logging.getLogger("registry")

MAX_BODY_BYTES = 8 * 1024 * 1024  # a tags page of 1000 names is ~30 KB; anything near this is not a registry
MAX_REDIRECTS = 5
DISTRIBUTION_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID",
    "TAG_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS", "UNKNOWN", "UNAVAILABLE",
    "PAGINATION_NUMBER_INVALID", "RANGE_INVALID",
})


def timeouts(timeout: tuple[float, float] | None = None) -> tuple[float, float]:
    """(connect, read) seconds: the explicit value, else settings REGISTRY_CONNECT_TIMEOUT/REGISTRY_READ_TIMEOUT."""
    if timeout is not None:
        return float(timeout[0]), float(timeout[1])
    return (
        float(setting("REGISTRY_CONNECT_TIMEOUT", defaults.CONNECT_TIMEOUT)),
        float(setting("REGISTRY_READ_TIMEOUT", defaults.READ_TIMEOUT)),
    )


# --- endpoints: one pooled session per (scheme, host, CA) ---------------------------------------------------------

class _NoAuth(requests.auth.AuthBase):
    """Passed as `auth=` so requests never falls back to ~/.netrc: credentials come from the dockerCfg only."""

    def __call__(self, request):
        return request


_NO_AUTH = _NoAuth()


class CaFiles:
    """The CA of a source as a file requests can verify with: one file per CA content in a private (0700)
    temporary directory, written once and removed at interpreter exit.

    Why a cached file and not one temp file per look-up: requests/urllib3 need a path, read at each new TLS
    connection; a file per look-up would cost a write and an unlink per poll and race with pooled connections
    that are still open. The content is public (a root CA plus the default bundle), so a private dir suffices.
    The bundle holds the default roots too (`default_ca_bundle()`): Deckhouse adds the CA to the system pool,
    it does not replace it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._paths: dict[str, str] = {}

    def path(self, ca_pem: str) -> str:
        with self._lock:
            found = self._paths.get(ca_pem)
            if found and os.path.exists(found):
                return found
            if self._dir is None or not os.path.isdir(self._dir):
                self._dir = tempfile.mkdtemp(prefix="mpo-registry-ca-")  # mode 0700
            path = os.path.join(self._dir, hashlib.sha256(ca_pem.encode()).hexdigest()[:32] + ".pem")
            with open(default_ca_bundle(), encoding="utf-8") as default_bundle:
                bundle = ca_pem.strip() + "\n" + default_bundle.read()
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(bundle)
            os.replace(path + ".tmp", path)
            self._paths[ca_pem] = path
            return path

    def cleanup(self) -> None:
        with self._lock:
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._paths.clear()


def default_ca_bundle() -> str:
    """The bundle requests verifies with when a source has no CA: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (the
    system's), else certifi's."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(variable, "")
        if path and os.path.isfile(path):
            return path
    return requests.certs.where()


class Endpoint:
    """A registry (or token server) base URL with its pooled session and what we learned about its auth.

    The session is oras-py's: `oras.provider.Registry` builds it with a cookie policy that ignores registry
    cookies (Harbor sets CSRF cookies) and the scheme/TLS-verify setting. We mount a larger connection pool
    without retries and send requests through `session.request` directly (see registry.client's docstring).
    """

    def __init__(self, scheme: str, host: str, verify: bool | str, pool_size: int) -> None:
        self.oras = oras.provider.Registry(
            hostname=host, insecure=scheme == "http", tls_verify=verify, auth_backend="basic"
        )
        self.session: requests.Session = self.oras.session
        # The environment (HTTP(S)_PROXY/NO_PROXY) is read once per endpoint: with trust_env requests re-reads
        # it on every request (about a tenth of a local look-up) and would also consult ~/.netrc.
        self.session.proxies.update(requests.utils.get_environ_proxies(f"{scheme}://{host}"))
        self.session.trust_env = False
        # Direct connections go through the destination guard at connect time; through a proxy (which resolves
        # the name itself) the name is checked here before each request instead.
        self.proxied = bool(self.session.proxies.get(scheme))
        adapter_class = HTTPAdapter if self.proxied else destinations.GuardedAdapter
        adapter = adapter_class(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.base_url = f"{self.oras.prefix}://{host}"
        self.host = host
        self.hostname, port = destinations.split_host_port(host)
        self.port = port or (80 if scheme == "http" else 443)
        self.verify = verify
        # "basic" or "bearer" once the registry challenged us: later requests authenticate up front instead of
        # paying an anonymous round trip each time. A benign race: threads write the same value.
        self.auth_scheme: str | None = None

    def send(self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], what: str,
             stream: bool = False, ca: str = "", source: str = "") -> requests.Response:
        """One bounded request; transport failures become RegistryError naming `what` (host or token server).

        Redirects are followed on the same scheme, host and port only (at most MAX_REDIRECTS): credentials and the
        destination guard are per host, and a registry has no business sending the portal elsewhere.
        """
        destinations.check_name(self.hostname, self.port)
        if self.proxied:
            destinations.check_resolved(self.hostname, self.port)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers, timeout, what, stream, ca, source)
            if not response.is_redirect:
                return response
            location = requests.compat.urljoin(url, response.headers.get("Location", ""))
            response.close()
            if urlsplit(location).scheme != urlsplit(url).scheme or urlsplit(location).netloc.lower() != self.host:
                raise RegistryError(
                    ErrorKind.REGISTRY_ERROR, f"{what} answered HTTP {response.status_code} with a redirect to "
                    "another host; the portal follows redirects only on the same host.", status=response.status_code)
            url = location
        raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{what} redirected more than {MAX_REDIRECTS} times.")

    def _send_once(self, method: str, url: str, headers: dict[str, str], timeout: tuple[float, float], what: str,
                   stream: bool, ca: str, source: str) -> requests.Response:
        try:
            return self.session.request(
                method, url, headers=headers, timeout=timeout, verify=self.verify, auth=_NO_AUTH,
                allow_redirects=False, stream=stream,
            )
        except requests.exceptions.SSLError as exc:
            raise tls_error(exc, what, ca, source) from None
        except requests.exceptions.ConnectTimeout:
            raise RegistryError(
                ErrorKind.TIMEOUT, f"{what} did not accept a connection within {timeout[0]:g}s: check the repo "
                f"host and port of ModuleSource \"{source}\" and the network path to it."
            ) from None
        except requests.exceptions.ReadTimeout:
            raise RegistryError(
                ErrorKind.TIMEOUT, f"{what} accepted the connection but did not answer within {timeout[1]:g}s."
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise connection_error(exc, what, source) from None
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                ErrorKind.REGISTRY_ERROR, f"request to {what} failed: {type(exc).__name__}."
            ) from None


class Endpoints:
    """All endpoints, created on first use, shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, str, str], Endpoint] = {}
        self.ca_files = CaFiles()

    def get(self, scheme: str, host: str, ca: str) -> Endpoint:
        key = (scheme, host, ca)
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            return endpoint
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                # Without trust_env requests would not apply REQUESTS_CA_BUNDLE: name the bundle explicitly.
                verify: bool | str = True
                if scheme == "https":
                    verify = self.ca_files.path(ca) if ca else default_ca_bundle()
                pool_size = int(setting("REGISTRY_POOL_SIZE", defaults.POOL_SIZE))
                endpoint = self._endpoints[key] = Endpoint(scheme, host, verify, pool_size)
            return endpoint

    def close(self) -> None:
        with self._lock:
            for endpoint in self._endpoints.values():
                endpoint.session.close()
            self._endpoints.clear()
        self.ca_files.cleanup()


ENDPOINTS = Endpoints()
TOKENS = TokenCache()
atexit.register(ENDPOINTS.close)


def reset() -> None:
    """Close all sessions, forget tokens, decoded credentials and CA files (tests; a settings change)."""
    ENDPOINTS.close()
    TOKENS.clear()
    credentials_for.cache_clear()


# --- a source, resolved --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What every request needs from a ModuleSource-like object."""

    name: str
    repo: str
    host: str
    path: str
    scheme: str  # "http" | "https"
    ca: str
    creds: Credentials | None

    @property
    def what(self) -> str:
        return f"the registry {self.host}"

    @property
    def endpoint(self) -> Endpoint:
        return ENDPOINTS.get(self.scheme, self.host, self.ca)


@sensitive_variables("docker_cfg", "creds")
def target_for(source) -> Target:
    """Read a ModuleSource-like object (repo, scheme, docker_cfg, ca, name). Raises RegistryError."""
    repo = str(getattr(source, "repo", "") or "").strip().rstrip("/")
    name = str(getattr(source, "name", "") or repo)
    if "://" in repo:
        repo = repo.split("://", 1)[1]
    host, path = split_repo(repo)
    if not host:
        raise RegistryError(ErrorKind.REPOSITORY_NOT_FOUND, f'ModuleSource "{name}" has no registry repo.')
    scheme = "http" if str(getattr(source, "scheme", "") or "HTTPS").strip().upper() == "HTTP" else "https"
    ca = str(getattr(source, "ca", "") or "").strip() if scheme == "https" else ""
    docker_cfg = str(getattr(source, "docker_cfg", "") or "")
    creds = credentials_for(docker_cfg, repo) if docker_cfg.strip() else None
    return Target(name=name, repo=repo, host=host, path=path, scheme=scheme, ca=ca, creds=creds)


# --- authenticated requests ---------------------------------------------------------------------------------------

@sensitive_variables("headers", "creds", "sent", "token")
def request(target: Target, method: str, url: str, repo_path: str, headers: dict[str, str],
            timeout: tuple[float, float], stream: bool = False) -> requests.Response:
    """A request to the target's registry for repository `repo_path`, authenticated as the registry asks.

    Basic: credentials after the first challenge, then up front. Bearer: a token per (host, repository scope,
    credentials) from the challenge's realm, cached, refreshed once when the registry answers 401/403 to it.
    Returns any response that is not 401/403; a final 401/403 raises `auth_failed`.
    """
    endpoint = target.endpoint
    creds = target.creds
    key = (target.host, f"repository:{repo_path}:pull", creds.fingerprint if creds else "")
    sent: Token | None = None
    headers = dict(headers)
    if endpoint.auth_scheme == "basic" and creds is not None:
        headers["Authorization"] = creds.basic_header
    elif endpoint.auth_scheme == "bearer":
        sent = TOKENS.get(key)
        if sent is not None:
            headers["Authorization"] = "Bearer " + sent.value

    def send() -> requests.Response:
        return endpoint.send(method, url, headers, timeout, target.what, stream, target.ca, target.name)

    response = send()
    if response.status_code not in (401, 403):
        return response
    challenges = parse_challenges(response.headers.get("WWW-Authenticate"))
    bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
    basic = next((c for c in challenges if c.scheme == "basic"), None)
    response.close()
    if bearer is not None:
        endpoint.auth_scheme = "bearer"
        token, fresh = _obtain_token(target, key, bearer, stale=sent, timeout=timeout)
        headers["Authorization"] = "Bearer " + token.value
        response = send()
        if response.status_code in (401, 403) and not fresh:
            # Another thread's token was refused (it expired meanwhile): one more with a token of our own.
            response.close()
            token, fresh = _obtain_token(target, key, bearer, stale=token, timeout=timeout)
            headers["Authorization"] = "Bearer " + token.value
            response = send()
        if response.status_code in (401, 403):
            TOKENS.discard(key, token)
    elif basic is not None and creds is not None and headers.get("Authorization") != creds.basic_header:
        endpoint.auth_scheme = "basic"
        headers["Authorization"] = creds.basic_header
        response = send()
    if response.status_code in (401, 403):
        response.close()
        raise auth_error(target, repo_path, response.status_code, with_token=bearer is not None)
    return response


def _obtain_token(target: Target, key: tuple[str, str, str], challenge: Challenge, stale: Token | None,
                  timeout: tuple[float, float]) -> tuple[Token, bool]:
    """(token, fresh) for `key`: the cached one if another thread already replaced `stale` (fresh=False),
    else a new one from the token server (fresh=True)."""
    TOKENS.discard(key, stale)
    with TOKENS.fetch_lock(key):
        cached = TOKENS.get(key)
        if cached is not None and cached is not stale:
            return cached, False
        value, expires_in = _request_token(target, challenge, key[1], timeout)
        return TOKENS.put(key, value, expires_in), True


@sensitive_variables("headers", "value")
def _request_token(target: Target, challenge: Challenge, scope: str,
                   timeout: tuple[float, float]) -> tuple[str, float]:
    """GET the challenge's realm (docker token protocol) with the source's credentials as Basic auth."""
    realm = challenge.realm
    if "://" not in realm:
        realm = f"{target.scheme}://{realm.lstrip('/')}"
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{target.host} named an unusable token server realm.")
    what = f"the token server {parts.netloc} of {target.host}"
    destinations.check_realm(registry_scheme=target.scheme, registry_host=target.host, realm_scheme=parts.scheme,
                             realm_netloc=parts.netloc.lower(), source=target.name,
                             with_credentials=target.creds is not None)
    endpoint = ENDPOINTS.get(parts.scheme, parts.netloc.lower(), target.ca)
    params = {"scope": challenge.scope or scope}
    if challenge.service:
        params["service"] = challenge.service
    headers = {"Accept": "application/json"}
    if target.creds is not None:
        headers["Authorization"] = target.creds.basic_header
        if target.creds.username:
            params["account"] = target.creds.username
    url = requests.Request("GET", realm, params=params).prepare().url or realm
    response = endpoint.send("GET", url, headers, timeout, what, True, target.ca, target.name)
    try:
        if response.status_code in (401, 403):
            raise auth_error(target, "", response.status_code, token_server=parts.netloc)
        if response.status_code != 200:
            raise status_error(response, what, target)
        data = read_json(response, timeout, what)
    finally:
        response.close()
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{what} answered without a token.", status=200)
    try:
        expires_in = float(data.get("expires_in") or 60)
    except (TypeError, ValueError):
        expires_in = 60.0
    return token, expires_in


# --- bodies --------------------------------------------------------------------------------------------------------

def read_body(response: requests.Response, timeout: tuple[float, float], what: str) -> bytes:
    """The body of a streamed response, bounded in size and in wall-clock time (the read timeout only bounds
    each socket read; a registry trickling bytes would otherwise hold a poller forever)."""
    deadline = time.monotonic() + 2 * timeout[1]
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{what} sent an oversized answer.",
                                    status=response.status_code)
            if time.monotonic() > deadline:
                raise RegistryError(ErrorKind.TIMEOUT, f"{what} did not finish its answer within "
                                    f"{2 * timeout[1]:g}s.")
    except requests.exceptions.RequestException:
        raise RegistryError(ErrorKind.TIMEOUT, f"{what} stopped sending its answer.") from None
    finally:
        response.close()
    return b"".join(chunks)


def read_json(response: requests.Response, timeout: tuple[float, float], what: str):
    body = read_body(response, timeout, what)
    try:
        return parse_json(body, what=what)
    except ValueError:
        raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{what} answered with invalid JSON.",
                            status=response.status_code) from None


def error_codes(response: requests.Response, timeout: tuple[float, float], target: Target) -> list[str]:
    """The distribution error codes of an error response (`{"errors": [{"code": ...}]}`), when it has a body."""
    if response.request is not None and response.request.method == "HEAD":
        return []
    try:
        data = read_json(response, timeout, target.host)
    except RegistryError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    # Only the codes of the distribution spec: an error text shows the portal's own request, never what a
    # foreign server (an internal service behind a wrong repo) chose to put in its body.
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and str(e.get("code")) in DISTRIBUTION_CODES]
