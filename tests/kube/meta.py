"""ObjectMeta rules of the API server: names, labels, annotations, finalizers, system fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.kube.errors import ApiError, bad_request

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Fields only the server sets: taken from the stored object on every update.
SYSTEM_FIELDS = ("name", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                 "generation", "resourceVersion", "selfLink", "managedFields")


def now() -> str:
    """metav1.Time: RFC 3339 in UTC with second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_types(meta: Any) -> None:
    """Reject what the JSON decoder could not put into ObjectMeta (400, like the decoder error)."""
    if not isinstance(meta, dict):
        raise bad_request("json: cannot unmarshal into Go struct field of type v1.ObjectMeta")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad_request(f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{key} "
                              "of type map[string]string")
    finalizers = meta.get("finalizers")
    if finalizers is not None and not (isinstance(finalizers, list) and all(isinstance(f, str) for f in finalizers)):
        raise bad_request("json: cannot unmarshal into Go struct field ObjectMeta.metadata.finalizers of type []string")


def _qualified_name_errors(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        errors.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                      "characters, '-' or '.', and must start and end with an alphanumeric character")
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        errors.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                      "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                      "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errors


def validate(meta: dict[str, Any]) -> list[dict[str, str]]:
    """Field causes for an invalid ObjectMeta of a cluster-scoped custom resource."""
    causes: list[dict[str, str]] = []
    name = meta.get("name", "")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name", "message": (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
            "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
            r"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")})
    for key, value in (meta.get("labels") or {}).items():
        for error in _qualified_name_errors(key):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                           "message": f'Invalid value: "{key}": {error}'})
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels", "message": (
                f'Invalid value: "{value}": a valid label must be an empty string or consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character")})
    annotations = meta.get("annotations") or {}
    for key in annotations:
        for error in _qualified_name_errors(key):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.annotations",
                           "message": f'Invalid value: "{key}": {error}'})
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        causes.append({"reason": "FieldValueTooLong", "field": "metadata.annotations",
                       "message": "Too long: must have at most 262144 bytes"})
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        for error in _qualified_name_errors(finalizer):
            causes.append({"reason": "FieldValueInvalid", "field": f"metadata.finalizers[{index}]",
                           "message": f'Invalid value: "{finalizer}": {error}'})
    return causes


def for_create(meta: dict[str, Any], generated_suffix: str) -> dict[str, Any]:
    """The client-settable part of ObjectMeta on create; the server fills the rest."""
    if meta.get("resourceVersion"):
        # etcd3 store: a plain Go error, so the API answers 500 with reason "" (StatusReasonUnknown).
        raise ApiError(500, "resourceVersion should not be set on objects to be created", reason="")
    name = meta.get("name") or ""
    if not name and meta.get("generateName"):
        name = meta["generateName"] + generated_suffix
    kept = {k: v for k, v in meta.items() if k in ("generateName", "labels", "annotations", "finalizers",
                                                    "ownerReferences") and v is not None}
    return {"name": name, **kept}


def for_update(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Client metadata merged over the stored system fields (which an update cannot change)."""
    merged = {k: v for k, v in new.items() if k not in SYSTEM_FIELDS and k != "namespace" and v is not None}
    merged.update({k: old[k] for k in SYSTEM_FIELDS if k in old})
    return merged
