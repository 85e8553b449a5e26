"""The portal's registry client: digests of module images, module discovery, tags. The only code that imports oras.

Public API (all functions take a ModuleSource-like object with `name`, `repo`, `scheme`, `docker_cfg`, `ca`):

- `image_reference(repo, module, tag)`: the one place an image reference is built.
- `resolve_digest(source, module, tag) -> DigestLookup`: `HEAD /v2/<repo>/<module>/manifests/<tag>`, the
  `Docker-Content-Digest` header; nothing is downloaded.
- `discover_modules(source) -> ModuleListing`: the tags of the repo itself, each a module name (Deckhouse's rule:
  at most 1500, skip `modules` and names over 64 characters).
- `list_tags(source, module) -> TagListing`: the tags of one module repository.
- `docker_cfg_credentials(docker_cfg, repo)` / `validate_docker_cfg(docker_cfg, repo)`: the one dockerCfg decoder.

None of them raises: failures are a `RegistryError` (kind, user-facing message, HTTP status, retry_after) in the
result. Every request is bounded (settings `REGISTRY_CONNECT_TIMEOUT`, `REGISTRY_READ_TIMEOUT`; defaults in
registry/defaults.py, read per call, Django optional), nothing retries or sleeps: the caller's schedule is the retry
policy, and `rate_limited` errors carry the registry's `Retry-After` as `retry_after` (UTC).

What comes from oras-py, and why the rest is done here:

- Used: `oras.defaults.default_manifest_accepted_media_types` (the Accept header: OCI manifest and index, Docker
  v2 manifest and manifest list; without it distribution answers 404 for OCI manifests);
  `oras.provider.Registry` for each endpoint's `requests.Session` (its cookie policy ignores registry cookies,
  its scheme prefix and TLS-verify setting); `oras.auth.utils.get_basic_auth` for the Basic credentials.
  The tests seed registries with oras's `push()`.
- Not used: `Registry.do_request`, `get_tags`, `get_manifest`. `do_request` is wrapped in a retry decorator
  (5 attempts with 3**n s sleeps: 131 s on connection refused) and sends no timeout, so a registry that accepts
  and never answers blocks a poller forever; `get_manifest` returns no digest; `get_tags` ties page size to the
  limit and turns every failure into a ValueError without the status. oras's auth backends read
  ~/.docker/config.json, keep one token for all repositories, refresh it only on 403 (distribution answers 401
  for another scope), take a Basic realm for a token URL, and are not thread-safe. So requests go through the
  oras session's `request()` directly, with our own auth (`registry.auth`): Basic, or Bearer tokens cached per
  (host, repository scope, credentials) and refreshed on 401/403, safe across the poller's threads.

Connections are pooled per endpoint (scheme, host, CA) and shared by threads; a source's CA is verified from a
cached file in a private temp dir removed at exit (see `registry.transport.CaFiles`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import oras.defaults

from . import defaults
from .auth import docker_cfg_credentials, validate_docker_cfg
from .errors import DigestLookup, DockerCfgError, ErrorKind, ModuleListing, RegistryError, TagListing
from .failures import status_error
from .transport import Target, error_codes, read_body, read_json, request, reset, target_for, timeouts

__all__ = [
    "DigestLookup", "DockerCfgError", "ErrorKind", "ModuleListing", "RegistryError", "TagListing",
    "discover_modules", "docker_cfg_credentials", "image_reference", "list_tags", "reset", "resolve_digest",
    "validate_docker_cfg",
]

logger = logging.getLogger("registry")

ACCEPT_MANIFESTS = ", ".join(oras.defaults.default_manifest_accepted_media_types)
MAX_MODULES = 1500
MAX_MODULE_NAME = 64
SKIPPED_MODULE_NAMES = frozenset({"modules"})
MAX_TAGS = 10_000

# Distribution's grammar: a path component, and a tag.
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# An OCI content digest (algorithm:encoded), the one pattern the portal checks digests with.
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}$")

R = TypeVar("R")


def image_reference(repo: str, module: str, tag: str) -> str:
    """`<repo>/<module>:<tag>`: the one function that builds an image reference."""
    return f"{repo.strip().rstrip('/')}/{module}:{tag}"


def _guarded(what: str, fail: Callable[[RegistryError], R], call: Callable[[], R]) -> R:
    """Run `call`; a RegistryError becomes `fail(error)`, and so does any unexpected exception (logged), so no
    bare exception ever reaches a poller."""
    try:
        return call()
    except RegistryError as exc:
        logger.debug("registry: %s: %s: %s", what, exc.kind, exc.message)
        return fail(exc)
    except Exception as exc:
        logger.exception("registry: unexpected failure for %s", what)
        return fail(RegistryError(ErrorKind.REGISTRY_ERROR, f"unexpected error for {what}: {type(exc).__name__}."))


# --- digests -------------------------------------------------------------------------------------------------------

def resolve_digest(source, module: str, tag: str, *, timeout: tuple[float, float] | None = None) -> DigestLookup:
    """The digest of `<repo>/<module>:<tag>` from a HEAD of its manifest (`Docker-Content-Digest`), or why not.

    `timeout` = (connect, read) seconds overrides the settings for this call.
    """
    reference = image_reference(str(getattr(source, "repo", "") or ""), module, tag)
    return _guarded(
        reference,
        lambda error: DigestLookup(reference, None, error),
        lambda: DigestLookup(reference, _resolve(target_for(source), module, tag, timeouts(timeout), reference)),
    )


def _resolve(target: Target, module: str, tag: str, timeout: tuple[float, float], reference: str) -> str:
    if not _COMPONENT_RE.match(module or ""):
        raise RegistryError(ErrorKind.REPOSITORY_NOT_FOUND,
                            f'"{module}" is not a valid module name, so {reference} cannot exist.')
    if not _TAG_RE.match(tag or ""):
        raise RegistryError(ErrorKind.TAG_NOT_FOUND, f'"{tag}" is not a valid image tag, so {reference} cannot exist.')
    repo_path = f"{target.path}/{module}" if target.path else module
    url = f"{target.endpoint.base_url}/v2/{repo_path}/manifests/{tag}"
    headers = {"Accept": ACCEPT_MANIFESTS}
    response = request(target, "HEAD", url, repo_path, headers, timeout)
    response.close()
    if response.status_code == 200:
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        if DIGEST_RE.match(digest):
            return digest
        # A registry that leaves the header out of HEAD: read the manifest (not the image) and hash it.
        response = request(target, "GET", url, repo_path, headers, timeout, stream=True)
        if response.status_code == 200:
            digest = response.headers.get("Docker-Content-Digest", "").strip()
            body = read_body(response, timeout, target.what)
            return digest if DIGEST_RE.match(digest) else "sha256:" + hashlib.sha256(body).hexdigest()
    if response.status_code == 404:
        raise _not_found(target, module, tag, repo_path, reference, timeout)
    raise status_error(response, target.what, target, error_codes(response, timeout, target), reference)


def _not_found(target: Target, module: str, tag: str, repo_path: str, reference: str,
               timeout: tuple[float, float]) -> RegistryError:
    """Tell a missing tag from a missing module repository: distribution answers MANIFEST_UNKNOWN for both on a
    manifest, but NAME_UNKNOWN (404) on the tags of a repository that does not exist."""
    try:
        next(_tag_pages(target, repo_path, 1, timeout, reference, module))
    except RegistryError as exc:
        if exc.kind == ErrorKind.REPOSITORY_NOT_FOUND:
            return RegistryError(
                ErrorKind.REPOSITORY_NOT_FOUND,
                f"{reference} not found: the repository {target.repo}/{module} does not exist on {target.host} "
                f'(no image of module "{module}" was pushed there yet, or the repo of ModuleSource "{target.name}" '
                "is not where the module images are).",
                status=404,
            )
    except StopIteration:
        pass
    return RegistryError(
        ErrorKind.TAG_NOT_FOUND,
        f'{reference} not found: the repository {target.repo}/{module} has no tag "{tag}".',
        status=404,
    )


# --- tags ----------------------------------------------------------------------------------------------------------

def _page_size(page_size: int | None) -> int:
    size = page_size if page_size is not None else defaults.setting("REGISTRY_TAGS_PAGE_SIZE", defaults.TAGS_PAGE_SIZE)
    return max(1, int(size))


def _tag_pages(target: Target, repo_path: str, page_size: int, timeout: tuple[float, float], subject: str,
               module: str | None) -> Iterator[list[str]]:
    """Pages of `GET /v2/<repo_path>/tags/list?n=<page_size>`, following `Link: <...>; rel="next"` on the same
    registry only (credentials never follow a link elsewhere), each URL once."""
    base = target.endpoint.base_url
    url = f"{base}/v2/{repo_path}/tags/list?n={page_size}"
    seen: set[str] = set()
    while url not in seen:
        seen.add(url)
        response = request(target, "GET", url, repo_path, {"Accept": "application/json"}, timeout, stream=True)
        if response.status_code == 404:
            codes = error_codes(response, timeout, target)
            if module is None:
                message = (f"repository {target.repo} not found on {target.host}: no module has been pushed there "
                           f'yet, or the repo of ModuleSource "{target.name}" is wrong.')
            else:
                message = (f'module "{module}" not found: the repository {target.repo}/{module} does not exist on '
                           f"{target.host}.")
            if codes and "NAME_UNKNOWN" not in codes:
                message += f" ({', '.join(codes)})"
            raise RegistryError(ErrorKind.REPOSITORY_NOT_FOUND, message, status=404)
        if response.status_code != 200:
            raise status_error(response, target.what, target, error_codes(response, timeout, target), subject)
        link = response.links.get("next", {}).get("url")
        data = read_json(response, timeout, target.what)
        tags = data.get("tags") if isinstance(data, dict) else None
        if tags is None and isinstance(data, dict):
            tags = []  # distribution answers `"tags": null` for a repository without tags
        if not isinstance(tags, list):
            raise RegistryError(ErrorKind.REGISTRY_ERROR, f"{target.what} answered a tag list without tags.",
                                status=200)
        yield [t for t in tags if isinstance(t, str) and _TAG_RE.match(t)]  # names only, never arbitrary text
        if not tags or not link:
            return
        url = urljoin(response.url or url, link)
        if not url.startswith(base + "/") or urlsplit(url).netloc != urlsplit(base).netloc:
            logger.warning("registry: %s sent a pagination link to another host; stopping there", target.host)
            return


def discover_modules(source, *, page_size: int | None = None, limit: int = MAX_MODULES,
                     timeout: tuple[float, float] | None = None) -> ModuleListing:
    """Module names of a ModuleSource: the tags of its repo, sorted, at most `limit` (Deckhouse: 1500), without
    `modules` and names over 64 characters. `page_size` (default setting REGISTRY_TAGS_PAGE_SIZE, 1000) is the
    `n` asked per page."""

    def run() -> ModuleListing:
        target = target_for(source)
        if not target.path:
            raise RegistryError(ErrorKind.REPOSITORY_NOT_FOUND,
                                f'the repo of ModuleSource "{target.name}" has no repository path after the host.')
        modules: set[str] = set()
        for page in _tag_pages(target, target.path, _page_size(page_size), timeouts(timeout), target.repo, None):
            for name in page:
                if name in SKIPPED_MODULE_NAMES or len(name) > MAX_MODULE_NAME:
                    continue
                modules.add(name)
                if len(modules) >= limit:
                    return ModuleListing(sorted(modules), None, truncated=True)
        return ModuleListing(sorted(modules))

    repo = str(getattr(source, "repo", "") or "")
    return _guarded(f"modules of {repo}", lambda error: ModuleListing([], error), run)


def list_tags(source, module: str, *, page_size: int | None = None, limit: int = MAX_TAGS,
              timeout: tuple[float, float] | None = None) -> TagListing:
    """Tags of `<repo>/<module>` (all pages, at most `limit`), in the registry's order."""

    def run() -> TagListing:
        target = target_for(source)
        if not _COMPONENT_RE.match(module or ""):
            raise RegistryError(ErrorKind.REPOSITORY_NOT_FOUND, f'"{module}" is not a valid module name.')
        repo_path = f"{target.path}/{module}" if target.path else module
        tags: list[str] = []
        subject = f"{target.repo}/{module}"
        for page in _tag_pages(target, repo_path, _page_size(page_size), timeouts(timeout), subject, module):
            tags.extend(page)
            if len(tags) >= limit:
                return TagListing(tags[:limit], None, truncated=True)
        return TagListing(tags)

    repo = str(getattr(source, "repo", "") or "")
    return _guarded(f"tags of {repo}/{module}", lambda error: TagListing([], error), run)
