"""The object store behind the emulator: what kube-apiserver + etcd do for custom resources.

Every write, whether it arrives over HTTP or from a test acting as kubectl, goes through
``ObjectStore``: one global ``resourceVersion`` counter, ``uid``/``creationTimestamp``/
``generation``, the status subresource kept apart from the main resource, optimistic
concurrency (409 on a stale ``resourceVersion``), finalizers holding a deletion, schema
validation of the version in the URL, and a log of accepted writes for assertions.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.kube import meta as objmeta
from tests.kube import schema
from tests.kube.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    resource_not_found,
)
from tests.kube.patch import PatchError, json_patch, merge_patch
from tests.kube.schema import GROUP, ResourceDef
from tests.kube.selectors import SelectorError, field_matcher, label_matcher

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass
class WriteRecord:
    """One accepted write. ``body`` is what the client sent (a patch for PATCH), ``result`` what was stored."""

    seq: int
    actor: str
    method: str
    resource: str
    name: str
    version: str
    subresource: str | None
    content_type: str | None
    body: Any
    result: dict[str, Any] | None
    path: str = ""
    noop: bool = False
    warnings: list[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)


@dataclass
class WatchEvent:
    """A change as watchers see it; ``obj`` is the stored object at ``rv``."""

    rv: int
    type: str
    resource: str
    obj: dict[str, Any]


@dataclass
class WriteOptions:
    """Request-level options of a write."""

    actor: str = "kubectl"
    path: str = ""
    content_type: str | None = None
    dry_run: bool = False
    field_validation: str | None = None  # Ignore | Warn (default) | Strict
    field_manager: str | None = None


class ObjectStore:
    """Thread-safe store of cluster-scoped custom objects, keyed by resource plural and name."""

    def __init__(self, resources: dict[str, ResourceDef]):
        self.resources = resources
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1
        self.objects: dict[str, dict[str, dict[str, Any]]] = {plural: {} for plural in resources}
        self.writes: list[WriteRecord] = []
        self.events: list[WatchEvent] = []
        self.compacted_rv = 0
        self._list_views: dict[tuple[str, str, str], tuple[Any, dict[str, Any]]] = {}

    # ----- resources and versions

    def resource(self, plural: str, version: str) -> ResourceDef:
        """The resource served at ``version``, or the API server's plain 404."""
        rd = self.resources.get(plural)
        if rd is None or version not in rd.served:
            raise resource_not_found()
        return rd

    def view(self, rd: ResourceDef, stored: dict[str, Any], version: str) -> dict[str, Any]:
        """The stored object as served in ``version``: apiVersion rewritten, unknown fields pruned, defaulted.

        Pruning with the target schema is what drops ``spec.source`` from an MPO read as v1alpha2.
        """
        obj = json.loads(json.dumps(stored))  # a deep copy (stored objects are JSON), several times faster
        obj["apiVersion"] = f"{GROUP}/{version}"
        schema.prune(obj, rd.schemas[version])
        schema.default(obj, rd.schemas[version])
        return obj

    def _listed_view(self, rd: ResourceDef, plural: str, name: str, version: str) -> dict[str, Any]:
        """``view()`` for lists, kept per resourceVersion (every write moves it): list items are only serialized,
        so one shared copy serves every list until the object changes."""
        stored = self.objects[plural][name]
        key, rv = (plural, version, name), stored["metadata"].get("resourceVersion")
        hit = self._list_views.get(key)
        if hit is None or hit[0] != rv:
            hit = self._list_views[key] = (rv, self.view(rd, stored, version))
        return hit[1]

    def _to_storage(self, rd: ResourceDef, obj: dict[str, Any], version: str,
                    old: dict[str, Any] | None) -> dict[str, Any]:
        """Convert a written object to storage, keeping spec fields the write version cannot express.

        A v1alpha2 write of an MPO created as v1alpha1 keeps its ``spec.source`` for v1alpha1 readers,
        as a round-tripping conversion would.
        """
        stored = copy.deepcopy(obj)
        stored["apiVersion"] = f"{GROUP}/{rd.storage}"
        if old is not None and isinstance(old.get("spec"), dict) and isinstance(stored.get("spec"), dict):
            declared = rd.schemas[version].get("properties", {}).get("spec", {}).get("properties", {})
            for key, value in old["spec"].items():
                if key not in declared and key not in stored["spec"]:
                    stored["spec"][key] = copy.deepcopy(value)
        return stored

    # ----- reads

    def get(self, plural: str, version: str, name: str) -> dict[str, Any]:
        with self.lock:
            rd = self.resource(plural, version)
            stored = self.objects[plural].get(name)
            if stored is None:
                raise not_found(plural, name)
            return self.view(rd, stored, version)

    def list(self, plural: str, version: str, *, label_selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None,
             continue_token: str | None = None) -> dict[str, Any]:
        """A ``<Kind>List`` sorted by name (etcd key order), with ``limit``/``continue`` paging."""
        with self.lock:
            rd = self.resource(plural, version)
            try:
                matches_labels, matches_fields = label_matcher(label_selector), field_matcher(field_selector)
            except SelectorError as exc:
                raise bad_request(str(exc)) from exc
            start = ""
            if continue_token:
                try:
                    start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from exc
            names = [name for name in sorted(self.objects[plural]) if name > start or not start]
            items: list[dict[str, Any]] = []
            unread = 0
            for index, name in enumerate(names):  # a page converts only what it returns (and one more)
                obj = self._listed_view(rd, plural, name, version)
                if matches_labels(obj) and matches_fields(obj):
                    items.append(obj)
                    if limit and len(items) > limit:
                        unread = len(names) - index - 1
                        break
            list_meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
            if limit and len(items) > limit:
                items, rest = items[:limit], items[limit:]
                token = json.dumps({"start": items[-1]["metadata"]["name"], "rv": self.rv})
                list_meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
                list_meta["remainingItemCount"] = len(rest) + unread  # an estimate with selectors, as in Kubernetes
            return {"apiVersion": f"{GROUP}/{version}", "kind": rd.list_kind, "metadata": list_meta, "items": items}

    # ----- writes

    def _commit(self, rd: ResourceDef, name: str, stored: dict[str, Any], event: str) -> None:
        """Bump the global resourceVersion, store the object (drop it for DELETED) and wake watchers."""
        self.rv += 1
        stored["metadata"]["resourceVersion"] = str(self.rv)
        if event == "DELETED":
            self.objects[rd.plural].pop(name, None)
        else:
            self.objects[rd.plural][name] = stored
        self.events.append(WatchEvent(self.rv, event, rd.plural, copy.deepcopy(stored)))
        self.changed.notify_all()

    def _log(self, rd: ResourceDef, method: str, name: str, version: str, subresource: str | None, body: Any,
             result: dict[str, Any] | None, opts: WriteOptions, noop: bool = False,
             warnings: list[str] | None = None) -> None:
        self.writes.append(WriteRecord(
            seq=len(self.writes) + 1, actor=opts.actor, method=method, resource=rd.plural, name=name,
            version=version, subresource=subresource, content_type=opts.content_type, body=copy.deepcopy(body),
            result=copy.deepcopy(result), path=opts.path, noop=noop, warnings=list(warnings or [])))

    def _decode(self, rd: ResourceDef, version: str, body: Any, opts: WriteOptions) -> tuple[dict[str, Any], list[str]]:
        """Check type meta and prune unknown fields (Warn: warnings; Strict: 400), like the CR decoder."""
        if not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else type(body).__name__
            raise bad_request(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
        obj = copy.deepcopy(body)
        expected = f"{GROUP}/{version}"
        if not obj.get("kind") or not obj.get("apiVersion"):
            raise bad_request("Object 'Kind' is missing in " + json.dumps(body)[:200])
        if obj["apiVersion"] != expected:
            raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                              f"API version ({expected})")
        if obj["kind"] != rd.kind:
            raise bad_request(f"the kind in the data ({obj['kind']}) does not match the expected kind ({rd.kind})")
        obj["metadata"] = obj.get("metadata") if obj.get("metadata") is not None else {}
        objmeta.check_types(obj["metadata"])
        dropped = schema.prune_meta(obj["metadata"]) + schema.prune(obj, rd.schemas[version])
        if dropped and opts.field_validation == "Strict":
            unknown = ", ".join(f'unknown field "{p}"' for p in dropped)
            raise bad_request(f'{rd.kind} in version "{version}" cannot be handled as a {rd.kind}: '
                              f"strict decoding error: {unknown}")
        warnings = [] if opts.field_validation == "Ignore" else [f'unknown field "{p}"' for p in dropped]
        return obj, warnings

    def _validate(self, rd: ResourceDef, version: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        schema.default(obj, rd.schemas[version])
        causes = objmeta.validate(obj["metadata"]) if old is None else []
        causes += schema.validate(obj, rd.validator(version), old)
        if causes:
            raise invalid(rd.kind, obj["metadata"].get("name", ""), causes)

    def create(self, plural: str, version: str, body: Any, opts: WriteOptions | None = None) -> tuple[dict, list[str]]:
        """POST: 201 with the stored object; 409 AlreadyExists; 422 Invalid."""
        opts = opts or WriteOptions()
        with self.lock:
            rd = self.resource(plural, version)
            obj, warnings = self._decode(rd, version, body, opts)
            obj["metadata"] = objmeta.for_create(obj["metadata"], secrets.token_hex(3)[:5])
            if not obj["metadata"]["name"]:
                raise invalid(rd.kind, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                             "message": "Required value: name or generateName is required"}])
            obj.pop("status", None)  # with a status subresource, create ignores status
            self._validate(rd, version, obj, None)
            name = obj["metadata"]["name"]
            if name in self.objects[plural]:
                raise already_exists(plural, name)
            obj["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": objmeta.now(), "generation": 1})
            stored = self._to_storage(rd, obj, version, None)
            if opts.dry_run:
                return self.view(rd, stored, version), warnings
            self._commit(rd, name, stored, "ADDED")
            result = self.view(rd, stored, version)
            self._log(rd, "POST", name, version, None, body, result, opts, warnings=warnings)
            return result, warnings

    def update(self, plural: str, version: str, name: str, body: Any, *, subresource: str | None = None,
               opts: WriteOptions | None = None, method: str = "PUT", log_body: Any = None,
               require_rv: bool = True) -> tuple[dict[str, Any], list[str]]:
        """PUT (and the tail of every PATCH): optimistic concurrency, status/spec separation, finalizers."""
        opts = opts or WriteOptions()
        with self.lock:
            rd = self.resource(plural, version)
            current = self.objects[plural].get(name)
            if current is None:
                raise not_found(plural, name)
            old_view = self.view(rd, current, version)
            obj, warnings = self._decode(rd, version, body, opts)
            body_name = obj["metadata"].get("name")
            if body_name and body_name != name:
                raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
            sent_rv = obj["metadata"].get("resourceVersion")
            if not sent_rv and require_rv:
                # Custom resources do not allow unconditional updates.
                raise invalid(rd.kind, name, [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                               "message": "Invalid value: 0x0: must be specified for an update"}])
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise conflict(plural, name)
            sent_uid = obj["metadata"].get("uid")
            if sent_uid and sent_uid != current["metadata"]["uid"]:
                raise conflict(plural, name, f"Precondition failed: UID in precondition: {sent_uid}, "
                                             f"UID in object meta: {current['metadata']['uid']}")
            if subresource == "status":
                new = copy.deepcopy(old_view)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = self._main_update(rd, obj, current, old_view)
            self._validate(rd, version, new, old_view)
            stored = self._to_storage(rd, new, version, current)
            if _spec_part(stored) != _spec_part(current):
                stored["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            if stored == current:
                # A no-op write is not written to etcd: no new resourceVersion, no event.
                self._log(rd, method, name, version, subresource, body if log_body is None else log_body,
                          old_view, opts, noop=True, warnings=warnings)
                return old_view, warnings
            if opts.dry_run:
                return self.view(rd, stored, version), warnings
            finished = stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers")
            self._commit(rd, name, stored, "DELETED" if finished else "MODIFIED")
            result = self.view(rd, stored, version)
            self._log(rd, method, name, version, subresource, body if log_body is None else log_body,
                      result, opts, warnings=warnings)
            return result, warnings

    def _main_update(self, rd: ResourceDef, obj: dict[str, Any], current: dict[str, Any],
                     old_view: dict[str, Any]) -> dict[str, Any]:
        """A write of the main resource: system metadata and status stay as stored, finalizer rules apply."""
        new = obj
        new["metadata"] = objmeta.for_update(obj["metadata"], current["metadata"])
        if "status" in old_view:
            new["status"] = old_view["status"]
        else:
            new.pop("status", None)
        causes = objmeta.validate(new["metadata"])
        added = set(new["metadata"].get("finalizers") or []) - set(current["metadata"].get("finalizers") or [])
        if current["metadata"].get("deletionTimestamp") and added:
            causes.append({"reason": "FieldValueForbidden", "field": "metadata.finalizers",
                           "message": "Forbidden: no new finalizers can be added if the object is being deleted"})
        if causes:
            raise invalid(rd.kind, current["metadata"]["name"], causes)
        return new

    def patch(self, plural: str, version: str, name: str, patch: Any, content_type: str, *,
              subresource: str | None = None, opts: WriteOptions | None = None) -> tuple[dict, list[str], int]:
        """PATCH: a merge or JSON patch of the served view, then the update rules. Returns (obj, warnings, code)."""
        opts = opts or WriteOptions()
        opts.content_type = content_type
        with self.lock:
            rd = self.resource(plural, version)
            if content_type == APPLY_PATCH:
                return self._apply(rd, version, name, patch, subresource, opts)
            current = self.objects[plural].get(name)
            if current is None:
                raise not_found(plural, name)
            view = self.view(rd, current, version)
            try:
                if content_type == MERGE_PATCH:
                    if not isinstance(patch, dict):
                        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
                    new = merge_patch(view, patch)
                else:
                    if not isinstance(patch, list):
                        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
                    new = json_patch(view, patch)
            except PatchError as exc:
                raise ApiError(422, str(exc)) from exc
            # A patch is conditional only if it sets metadata.resourceVersion itself.
            result, warnings = self.update(plural, version, name, new, subresource=subresource, opts=opts,
                                           method="PATCH", log_body=patch, require_rv=False)
            return result, warnings, 200

    def _apply(self, rd: ResourceDef, version: str, name: str, patch: Any, subresource: str | None,
               opts: WriteOptions) -> tuple[dict, list[str], int]:
        """Server-side apply, simplified: create if missing, else merge the applied fields (no ownership)."""
        if not opts.field_manager:
            cause = {"reason": "FieldValueRequired", "field": "fieldManager",
                     "message": "Required value: is required for apply patch"}
            raise ApiError(422, f'PatchOptions.meta.k8s.io "" is invalid: fieldManager: {cause["message"]}',
                           details={"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [cause]})
        if not isinstance(patch, dict):
            raise bad_request("error decoding YAML: apply patch must be an object")
        current = self.objects[rd.plural].get(name)
        if current is None:
            if subresource:
                raise not_found(rd.plural, name)
            obj, warnings = self.create(rd.plural, version, patch, opts)
            return obj, warnings, 201
        view = self.view(rd, current, version)
        merged = _deep_merge(view, patch)
        merged["metadata"]["resourceVersion"] = (patch.get("metadata") or {}).get(
            "resourceVersion", view["metadata"]["resourceVersion"])
        obj, warnings = self.update(rd.plural, version, name, merged, subresource=subresource, opts=opts,
                                    method="PATCH", log_body=patch)
        return obj, warnings, 200

    def delete(self, plural: str, version: str, name: str, options: dict[str, Any] | None = None,
               opts: WriteOptions | None = None) -> dict[str, Any]:
        """DELETE: gone at once (200 with the object), or held by finalizers with a deletionTimestamp."""
        opts = opts or WriteOptions()
        options = options or {}
        with self.lock:
            rd = self.resource(plural, version)
            current = self.objects[plural].get(name)
            if current is None:
                raise not_found(plural, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise conflict(plural, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                             f"UID in object meta: {current['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise conflict(plural, name, f"Precondition failed: ResourceVersion in precondition: "
                                             f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                             f"{current['metadata']['resourceVersion']}")
            if opts.dry_run:
                return self.view(rd, current, version)
            if current["metadata"].get("finalizers"):
                if current["metadata"].get("deletionTimestamp"):
                    return self.view(rd, current, version)  # already terminating: nothing changes
                stored = copy.deepcopy(current)
                stored["metadata"].update({"deletionTimestamp": objmeta.now(), "deletionGracePeriodSeconds": 0,
                                           "generation": current["metadata"].get("generation", 1) + 1})
                self._commit(rd, name, stored, "MODIFIED")
            else:
                stored = copy.deepcopy(current)
                self._commit(rd, name, stored, "DELETED")
            result = self.view(rd, stored, version)
            self._log(rd, "DELETE", name, version, None, options or None, result, opts)
            return result

    def delete_collection(self, plural: str, version: str, *, label_selector: str | None = None,
                          field_selector: str | None = None, opts: WriteOptions | None = None) -> dict[str, Any]:
        """DELETE on the collection: each matching object is deleted as by a single DELETE."""
        with self.lock:
            listing = self.list(plural, version, label_selector=label_selector, field_selector=field_selector)
            listing["items"] = [self.delete(plural, version, o["metadata"]["name"], opts=opts)
                                for o in listing["items"]]
            listing["metadata"]["resourceVersion"] = str(self.rv)
            return listing


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What a generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _deep_merge(base: Any, applied: Any) -> Any:
    if isinstance(base, dict) and isinstance(applied, dict):
        result = copy.deepcopy(base)
        for key, value in applied.items():
            result[key] = _deep_merge(result.get(key), value)
        return result
    return copy.deepcopy(applied)
