"""What the product's Kubernetes client asked the API server for, as RBAC sees it, across the whole test run.

The emulator hands every request here (`record()`); only those with the product's User-Agent
(`overrides.cluster.client.USER_AGENT`) count, so kubectl-like writes by tests and the simulated Deckhouse
controller stay out. Each is reduced the way kube-apiserver's RequestInfoFactory does before authorization:
`Access(verb, group, resource, subresource)` for resource requests (GET on a name = get, on a collection = list,
or watch with `?watch=1`; POST = create; PUT = update; PATCH = patch; DELETE = delete / deletecollection) and the
path for non-resource requests (discovery). `tests/test_rbac.py` compares the union with the rendered ClusterRole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

PRODUCT_USER_AGENT_PREFIX = "mpo-portal/"


@dataclass(frozen=True, order=True)
class Access:
    verb: str
    group: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{sub}"


_lock = threading.Lock()
_resource_access: set[Access] = set()
_non_resource_paths: set[tuple[str, str]] = set()


def request_access(method: str, path: str, query: dict[str, str]) -> Access | tuple[str, str]:
    """An HTTP request as RBAC attributes: an `Access`, or `(verb, path)` for a non-resource URL."""
    parts = [p for p in path.split("/") if p]
    http_verb = method.lower()
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return ("get" if http_verb in ("get", "head") else http_verb, path)
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource, name, subresource = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    verb = {"post": "create", "put": "update", "patch": "patch"}.get(http_verb)
    if http_verb in ("get", "head"):
        verb = "watch" if query.get("watch") in ("1", "true") else "get" if name else "list"
    elif http_verb == "delete":
        verb = "delete" if name else "deletecollection"
    return Access(verb or http_verb, group, resource, subresource)


def record(method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
    """Keep the request's attributes when the product's client sent it (headers lower-cased)."""
    if not headers.get("user-agent", "").startswith(PRODUCT_USER_AGENT_PREFIX):
        return
    access = request_access(method, path, query)
    with _lock:
        if isinstance(access, Access):
            _resource_access.add(access)
        else:
            _non_resource_paths.add(access)


def product_access() -> tuple[set[Access], set[tuple[str, str]]]:
    """Everything recorded so far in this process: (resource accesses, non-resource (verb, path))."""
    with _lock:
        return set(_resource_access), set(_non_resource_paths)
