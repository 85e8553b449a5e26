"""The portal's Kubernetes client: the only module that imports `kubernetes`.

- Configuration: `settings.PORTAL_KUBECONFIG` (loaded into a dedicated `Configuration`, never the client's global
  default), else the in-cluster service account, else off (`cluster_state.cluster_mode()`). One `ApiClient` per
  configuration, cached and thread-safe, rebuilt when the settings (or the kubeconfig file) change.
- Every request is bounded by `settings.PORTAL_CLUSTER_TIMEOUT` and retried at most once, on a failed connect:
  the caller's backoff is the retry policy (see `overrides.cluster.sync`).
- API versions come from discovery (`GET /apis/deckhouse.io` and the version's resource list): ModulePullOverride
  v1alpha1 where the cluster serves it (the seed's version, with `spec.source`), else v1alpha2; the setting
  `PORTAL_MPO_API_VERSION` pins it. Discovery is cached for `DISCOVERY_TTL` seconds and dropped on a 404 for a
  version (`forget_discovery()`), as after a Deckhouse upgrade. Module is discovered the same way (v1beta1 where
  served, else v1alpha1; `PORTAL_MODULE_API_VERSION` pins it); ModuleConfig is v1alpha1.
- `override_body(override, version)` / `source_body(source)`: the one mapping of a row to its custom resource.
- Failures are raised as `ClusterError` with a kind and a message in words; never with a secret in it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from overrides.cluster.state import SYNC_OFF_MESSAGE, cluster_mode

logger = logging.getLogger("overrides.cluster")

GROUP = "deckhouse.io"
MPO_VERSIONS = ("v1alpha1", "v1alpha2")  # in order of preference: the seed's version first where it is served
MS_VERSION = "v1alpha1"
MODULE_VERSIONS = ("v1beta1", "v1alpha1")  # the package system's version first: its summary is the UI's truth
MC_VERSION = "v1alpha1"
DISCOVERY_TTL = 60.0
FIELD_MANAGER = "mpo-portal"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mpo-portal"
RENEW_ANNOTATION = "renew"
FORCE_RENEW_ANNOTATION = "modules.deckhouse.io/renew"
LIST_PAGE = 500
# Sent with every request: API server audit logs (and the test suite's RBAC check) tell the portal's calls apart.
USER_AGENT = "mpo-portal/1.0"

T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str


MPO = Resource("modulepulloverrides", "ModulePullOverride")
MS = Resource("modulesources", "ModuleSource")
MODULE = Resource("modules", "Module")
MODULE_CONFIG = Resource("moduleconfigs", "ModuleConfig")


class ClusterError(Exception):
    """A failed cluster request. `kind` is one of: off, config, unreachable, timeout, unauthorized, forbidden,
    not_found (the object), unserved (the resource/version), conflict, invalid, bad_request, rate_limited,
    server, protocol. `message` is meant for users (and never holds a secret)."""

    TRANSIENT = frozenset({"unreachable", "timeout", "conflict", "rate_limited", "server", "protocol", "unserved"})

    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth retrying as is; the others (422, 403, 401, 400, a broken config) need a person."""
        return self.kind in self.TRANSIENT

    def redacted(self, secrets: Iterable[str]) -> ClusterError:
        """The same error with any of `secrets` blanked out of its message (an API server may echo values)."""
        message = self.message
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        return ClusterError(self.kind, message, self.status)


# --- client ----------------------------------------------------------------------------------------

_lock = threading.Lock()
_cached: tuple[tuple, k8s.ApiClient] | None = None
_discovery: dict[tuple, tuple[float, str]] = {}


def _config_key() -> tuple:
    """What the client depends on; a new kubeconfig file (or a rewritten one) means a new client."""
    path = settings.PORTAL_KUBECONFIG
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    return (cluster_mode(), path, stat.st_mtime_ns if stat else None, stat.st_size if stat else None)


def _new_client() -> k8s.ApiClient:
    configuration = k8s.Configuration()
    path = settings.PORTAL_KUBECONFIG
    try:
        if path:
            k8s_config.load_kube_config(config_file=path, client_configuration=configuration, persist_config=False)
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
    except Exception as exc:  # noqa: BLE001 - a bad file fails in many ways (YAML, missing keys, certificates)
        where = f"kubeconfig {path}" if path else "the in-cluster service account"
        raise ClusterError("config", f"Cannot load the cluster configuration from {where}: {exc}") from None
    # One retry on a failed connect only (a request never sent); reads and statuses are not retried here.
    configuration.retries = urllib3.util.Retry(total=1, connect=1, read=0, status=0, redirect=0, other=0)
    client = k8s.ApiClient(configuration)
    client.user_agent = USER_AGENT
    return client


def api_client() -> k8s.ApiClient:
    """The cached ApiClient for the current settings; `ClusterError("off")` when sync is off."""
    global _cached
    key = _config_key()
    if key[0] != "on":
        raise ClusterError("off", SYNC_OFF_MESSAGE)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        old = _cached[1] if _cached is not None else None
        fresh = _new_client()
        _cached = (key, fresh)
    if old is not None:
        try:
            old.close()
        except Exception:  # noqa: BLE001 - closing a stale pool must never break the new client
            logger.debug("closing the previous cluster client failed", exc_info=True)
    return fresh


def api_server() -> str:
    """The API server's address, for messages ("" when off or unconfigured)."""
    try:
        return api_client().configuration.host
    except ClusterError:
        return ""


def reset() -> None:
    """Forget the cached client and discovery (tests, and after a configuration change)."""
    global _cached
    with _lock:
        _cached = None
        _discovery.clear()


def _timeout() -> float:
    return float(settings.PORTAL_CLUSTER_TIMEOUT)


def _error_from_api(exc: ApiException) -> ClusterError:
    status = exc.status or 0
    message, reason, has_name = "", "", False
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict):
            message, reason = str(body.get("message") or ""), str(body.get("reason") or "")
            has_name = bool((body.get("details") or {}).get("name"))
    except (TypeError, ValueError):
        message = (exc.body or "").strip()[:300]
    message = message or exc.reason or "no details"
    if status == 0:
        return ClusterError("protocol", f"Cluster request failed: {message}")
    kinds = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 409: "conflict", 422: "invalid",
             429: "rate_limited"}
    if status == 404:
        kind = "not_found" if has_name else "unserved"
    else:
        kind = kinds.get(status, "server" if status >= 500 else "protocol")
    label = f"{status} {reason}".strip()
    return ClusterError(kind, f"The cluster answered {label}: {message}", status)


def _error_from_transport(exc: Exception) -> ClusterError:
    server = api_server() or "the configured address"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # NewConnectionError subclasses ConnectTimeoutError in urllib3: a refusal is not a timeout.
    timed_out = isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError))
    if timed_out and not isinstance(exc, urllib3.exceptions.NewConnectionError):
        return ClusterError("timeout", f"Cluster at {server} did not answer within {_timeout():g} s")
    text = str(exc)
    if "refused" in text.lower():
        detail = "connection refused"
    elif "Name or service not known" in text or "nodename nor servname" in text:
        detail = "host name not found"
    else:
        detail = text.split(": ", 1)[-1][:200] or type(exc).__name__
    return ClusterError("unreachable", f"Cluster unreachable at {server}: {detail}")


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one client call bounded by the timeout, turning every failure into a ClusterError."""
    try:
        return fn(*args, _request_timeout=_timeout(), **kwargs)
    except ApiException as exc:
        raise _error_from_api(exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _error_from_transport(exc) from None


def _custom() -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api_client())


def _get_json(path: str) -> dict[str, Any]:
    """A GET of a discovery document as plain JSON (no model classes: they add nothing here)."""
    client = api_client()
    request = client.param_serialize(method="GET", resource_path=path, header_params={"Accept": "application/json"},
                                     auth_settings=["BearerToken"])

    def get(**kwargs: Any) -> Any:
        response = client.call_api(*request, **kwargs)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(data or b"{}")

    return _call(get)


# --- discovery -------------------------------------------------------------------------------------


def mpo_version() -> str:
    """The ModulePullOverride version to read and write: the pin, else discovered (cached briefly)."""
    return _served_version(MPO, "PORTAL_MPO_API_VERSION", _discover_mpo_version)


def module_version() -> str:
    """The Module version to read: the pin, else discovered; `ClusterError("unserved")` when none is served."""
    return _served_version(MODULE, "PORTAL_MODULE_API_VERSION", lambda: _discover_version(MODULE, MODULE_VERSIONS))


def _served_version(resource: Resource, pin_setting: str, discover: Callable[[], str]) -> str:
    pinned = getattr(settings, pin_setting).strip()
    if pinned:
        return pinned
    key = (*_config_key(), resource.plural)
    with _lock:
        cached = _discovery.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    version = discover()
    with _lock:
        _discovery[key] = (time.monotonic() + DISCOVERY_TTL, version)
    return version


def _discover_version(resource: Resource, versions: tuple[str, ...]) -> str:
    """The first of `versions` the cluster serves `resource` in (discovery documents only)."""
    group = _get_json(f"/apis/{GROUP}")
    served = {v.get("version") for v in group.get("versions") or [] if isinstance(v, dict)}
    for version in versions:
        if version in served:
            listing = _get_json(f"/apis/{GROUP}/{version}")
            if any(r.get("name") == resource.plural for r in listing.get("resources") or [] if isinstance(r, dict)):
                return version
    raise ClusterError("unserved", f"The cluster serves no {resource.kind} API ({GROUP} {' or '.join(versions)}).",
                       404)


def _discover_mpo_version() -> str:
    try:
        return _discover_version(MPO, MPO_VERSIONS)
    except ClusterError as exc:
        if exc.kind in ("not_found", "unserved") and "ModulePullOverride" not in exc.message:
            raise ClusterError("unserved", f"The cluster serves no {GROUP} API group: is Deckhouse installed?",
                               404) from None
        raise


def forget_discovery() -> None:
    with _lock:
        _discovery.clear()


def with_mpo_version(fn: Callable[[str], T]) -> T:
    """Run `fn(version)`; when that version is no longer served (404 for the resource), re-discover once."""
    version = mpo_version()
    try:
        return fn(version)
    except ClusterError as exc:
        if exc.kind != "unserved" or settings.PORTAL_MPO_API_VERSION.strip():
            raise
        forget_discovery()
        fresh = mpo_version()
        if fresh == version:
            raise
        logger.info("ModulePullOverride %s is no longer served; using %s", version, fresh)
        return fn(fresh)


# --- objects ---------------------------------------------------------------------------------------


def get_object(resource: Resource, version: str, name: str) -> dict[str, Any] | None:
    """The custom resource, or None when it does not exist."""
    try:
        return _call(_custom().get_cluster_custom_object, GROUP, version, resource.plural, name)
    except ClusterError as exc:
        if exc.kind == "not_found":
            return None
        raise


def create_object(resource: Resource, version: str, body: dict[str, Any]) -> dict[str, Any]:
    return _call(_custom().create_cluster_custom_object, GROUP, version, resource.plural, body,
                 field_manager=FIELD_MANAGER)


def patch_object(resource: Resource, version: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (conditional when the patch carries `metadata.resourceVersion`)."""
    return _call(_custom().patch_cluster_custom_object, GROUP, version, resource.plural, name, patch,
                 field_manager=FIELD_MANAGER, _content_type="application/merge-patch+json")


def delete_object(resource: Resource, version: str, name: str) -> bool:
    """Delete the custom resource; False when it was already gone. Finalizers are the controller's business."""
    try:
        _call(_custom().delete_cluster_custom_object, GROUP, version, resource.plural, name)
    except ClusterError as exc:
        if exc.kind == "not_found":
            return False
        raise
    return True


def list_objects(resource: Resource, version: str) -> list[dict[str, Any]]:
    """Every custom resource of the kind, following `continue` tokens."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = _call(_custom().list_cluster_custom_object, GROUP, version, resource.plural, limit=LIST_PAGE,
                     _continue=token)
        items.extend(i for i in (page or {}).get("items") or [] if isinstance(i, dict))
        token = ((page or {}).get("metadata") or {}).get("continue") or None
        if not token:
            return items


# --- bodies ----------------------------------------------------------------------------------------


def override_spec(override, version: str) -> dict[str, Any]:
    """`spec` of an MPO in `version`: v1alpha1 names its source; v1alpha2 has no `spec.source`."""
    spec: dict[str, Any] = {"imageTag": override.image_tag, "scanInterval": override.scan_interval,
                            "rollback": bool(override.rollback)}
    if version == "v1alpha1":
        spec = {"source": override.source.name, **spec}
    return spec


def renew_annotations(override) -> dict[str, str]:
    """The renew request as annotations: a fresh `renew` value per renew, plus the forced one when asked."""
    if override.renew_requested_at is None:
        return {}
    annotations = {RENEW_ANNOTATION: override.renew_requested_at.isoformat()}
    if override.renew_force:
        annotations[FORCE_RENEW_ANNOTATION] = "true"
    return annotations


def override_body(override, version: str, *, renew: bool = True) -> dict[str, Any]:
    """The ModulePullOverride custom resource for `override` in API `version`, labelled as the portal's."""
    metadata: dict[str, Any] = {"name": override.name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    annotations = renew_annotations(override) if renew else {}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": f"{GROUP}/{version}", "kind": MPO.kind, "metadata": metadata,
            "spec": override_spec(override, version)}


@sensitive_variables("registry", "spec")
def source_spec(source) -> dict[str, Any]:
    """`spec` of a ModuleSource; empty optional fields are left out (dockerCfg empty = anonymous)."""
    registry: dict[str, Any] = {"repo": source.repo, "scheme": source.scheme or "HTTPS"}
    if source.docker_cfg:
        registry["dockerCfg"] = source.docker_cfg
    if source.ca:
        registry["ca"] = source.ca
    spec: dict[str, Any] = {"registry": registry}
    if source.release_channel:
        spec["releaseChannel"] = source.release_channel
    return spec


def source_body(source) -> dict[str, Any]:
    """The ModuleSource custom resource for `source`, labelled as the portal's. Holds the plaintext dockerCfg:
    hand it only to the API server, never to a log or a response."""
    return {"apiVersion": f"{GROUP}/{MS_VERSION}", "kind": MS.kind,
            "metadata": {"name": source.name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "spec": source_spec(source)}


def merge_patch_for(desired: dict[str, Any], current: dict[str, Any], removable: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that makes `current` hold `desired`.

    Keys `current` has and `desired` lacks are kept (they may be another writer's, or a newer CRD's), except the
    dotted paths in `removable`: the portal's own optional fields, removed with `null` when cleared.
    """
    removable = set(removable)
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = {path.split(".", 1)[1] for path in removable if path.startswith(f"{key}.")}
            sub = merge_patch_for(value, old, inner)
            if sub:
                patch[key] = sub
        elif key not in current or value != old:
            patch[key] = value
    for key in removable:
        if "." not in key and key in current and key not in desired:
            patch[key] = None
    return patch
