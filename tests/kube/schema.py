"""CRD schemas as a kube-apiserver applies them: pruning, defaulting and validation.

The MPO and ModuleSource CRDs are the verbatim Deckhouse files in ``shared/crds`` (beside the repository);
Module and ModuleConfig are their schemas as Deckhouse ships them, kept in ``tests/kube/crds``.
A real API server runs, for every write of a custom resource: decode, prune unknown
fields, drop non-nullable nulls, apply ``default``s, validate against the structural
schema of the version in the URL (with validation ratcheting on updates: errors on
values that did not change are tolerated). This module does the same with jsonschema.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

GROUP = "deckhouse.io"

# Sibling of the repository locally (/work/shared) and in CI (a copy of shared/ beside the clone).
_REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR_CANDIDATES = (
    Path(os.environ["MPO_CRD_DIR"]) if os.environ.get("MPO_CRD_DIR") else None,
    _REPO_ROOT.parent / "shared" / "crds",
    Path("/work/shared/crds"),
)
CRD_FILES = {"modulepulloverrides": "module-pull-override.yaml", "modulesources": "module-source.yaml"}
# Module and ModuleConfig: the schemas of deckhouse/deckhouse's CRDs, stored with the emulator.
LOCAL_CRD_DIR = Path(__file__).resolve().parent / "crds"
LOCAL_CRD_FILES = {"modules": "module.yaml", "moduleconfigs": "module-config.yaml"}

# ObjectMeta fields the decoder keeps; anything else under metadata is dropped like an unknown field.
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
})

# OpenAPI v3.0 keywords that mean the same in JSON Schema draft 4 (OpenAPI 3.0 schemas are draft-4-like).
_PASSTHROUGH = frozenset({
    "type", "required", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "multipleOf", "minProperties",
    "maxProperties",
})


@dataclass
class ResourceDef:
    """One custom resource of the emulated group, with the versions this cluster serves."""

    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...]
    schemas: dict[str, dict[str, Any]]  # version -> openAPIV3Schema, as in the CRD
    served: tuple[str, ...]
    status_subresource: bool = True
    validators: dict[str, jsonschema.Draft4Validator] = field(default_factory=dict, repr=False)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage(self) -> str:
        """The version objects are kept in: the newest served one (v1alpha2 for MPOs since 1.67)."""
        return sorted(self.served, key=version_priority)[0]

    def validator(self, version: str) -> jsonschema.Draft4Validator:
        if version not in self.validators:
            self.validators[version] = jsonschema.Draft4Validator(to_json_schema(self.schemas[version]))
        return self.validators[version]


def crd_dir() -> Path:
    """The folder holding the CRD files (env ``MPO_CRD_DIR`` first)."""
    for candidate in CRD_DIR_CANDIDATES:
        if candidate is not None and (candidate / CRD_FILES["modulesources"]).exists():
            return candidate
    raise FileNotFoundError(f"CRD files not found in any of {CRD_DIR_CANDIDATES}")


def load_resource(plural: str, served: list[str] | tuple[str, ...]) -> ResourceDef:
    """Read one CRD and make its ResourceDef; ``served`` overrides the CRD's own served flags."""
    path = LOCAL_CRD_DIR / LOCAL_CRD_FILES[plural] if plural in LOCAL_CRD_FILES else crd_dir() / CRD_FILES[plural]
    crd = yaml.safe_load(path.read_text())
    names = crd["spec"]["names"]
    schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}
    if plural == "modulesources":
        _add_seed_era_status(schemas)
    unknown = [v for v in served if v not in schemas]
    if unknown or not served:
        raise ValueError(f"{plural}: cannot serve {list(served)}; the CRD defines {sorted(schemas)}")
    return ResourceDef(
        plural=names["plural"],
        singular=names["singular"],
        kind=names["kind"],
        short_names=tuple(names.get("shortNames", ())),
        schemas=schemas,
        served=tuple(sorted(served, key=version_priority)),
    )


def _add_seed_era_status(schemas: dict[str, dict[str, Any]]) -> None:
    """Declare the seed era's ``status.moduleErrors[] {name, error}`` so that shape survives pruning.

    The shipped CRD is the newer one; seed-era clusters had this field, and the portal must read both.
    """
    item = {"type": "object", "properties": {"name": {"type": "string"}, "error": {"type": "string"}}}
    for openapi in schemas.values():
        status = openapi.get("properties", {}).get("status", {}).setdefault("properties", {})
        status.setdefault("moduleErrors", {"type": "array", "items": item})


def version_priority(version: str) -> tuple[int, int, int]:
    """Sort key of Kubernetes version names: GA > beta > alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major, stage, minor = int(match.group(1)), match.group(2), int(match.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor)


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema into JSON Schema draft 4.

    ``x-kubernetes-*``, ``description``, ``default``, ``format`` and examples are not
    validation keywords for jsonschema; ``nullable`` becomes a ``null`` type.
    """
    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in schema.items() if k in _PASSTHROUGH}
    if "properties" in schema:
        out["properties"] = {k: to_json_schema(v) for k, v in schema["properties"].items()}
    if "items" in schema and isinstance(schema["items"], dict):
        out["items"] = to_json_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(schema["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [to_json_schema(s) for s in schema[key]]
    if "not" in schema:
        out["not"] = to_json_schema(schema["not"])
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _keeps_unknown(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) or schema.get("additionalProperties") is True


def prune(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Drop fields the schema does not declare, in place, as ``preserveUnknownFields: false`` does.

    Returns the dropped paths (``spec.source``) for the ``unknown field`` warnings.
    """
    dropped: list[str] = []
    if isinstance(obj, dict) and schema.get("type", "object") == "object" and not _keeps_unknown(schema):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in list(obj):
            sub_path = f"{path}.{key}" if path else key
            if not path and key in ("apiVersion", "kind", "metadata"):
                continue  # the root's type and object meta are not part of the schema
            if key in props:
                dropped += prune(obj[key], props[key], sub_path)
            elif isinstance(extra, dict):
                dropped += prune(obj[key], extra, sub_path)
            else:
                del obj[key]
                dropped.append(sub_path)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            dropped += prune(item, schema["items"], f"{path}[{index}]")
    return dropped


def prune_meta(meta: dict[str, Any]) -> list[str]:
    """Drop unknown ObjectMeta fields (the decoder would not keep them)."""
    dropped = [f"metadata.{k}" for k in meta if k not in OBJECT_META_FIELDS]
    for key in dropped:
        del meta[key.removeprefix("metadata.")]
    return dropped


def default(obj: Any, schema: dict[str, Any]) -> None:
    """Apply ``default``s in place; non-nullable nulls are removed first, as the API server does."""
    if isinstance(obj, dict):
        for key, prop in schema.get("properties", {}).items():
            if key in obj and obj[key] is None and not prop.get("nullable"):
                del obj[key]
            if key not in obj and "default" in prop:
                obj[key] = copy.deepcopy(prop["default"])
            if key in obj:
                default(obj[key], prop)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            default(item, schema["items"])


def _go_type(value: Any) -> str:
    """The type name kube-openapi prints for a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _field_path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _lookup(obj: Any, parts: list[Any]) -> tuple[bool, Any]:
    for part in parts:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and isinstance(part, int) and part < len(obj):
            obj = obj[part]
        else:
            return False, None
    return True, obj


def validate(obj: dict[str, Any], validator: jsonschema.Draft4Validator,
             old: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Validate ``obj`` (metadata excluded) and return Kubernetes ``causes``.

    With ``old`` (an update) an error on a value equal to the old one is dropped:
    CRD validation ratcheting, GA since Kubernetes 1.30.
    """
    body = {k: v for k, v in obj.items() if k != "metadata"}
    old_body = None if old is None else {k: v for k, v in old.items() if k != "metadata"}
    causes: list[dict[str, str]] = []
    for error in validator.iter_errors(body):
        parts = list(error.absolute_path)
        if old_body is not None:
            found_new, new_value = _lookup(body, parts)
            found_old, old_value = _lookup(old_body, parts)
            if found_new and found_old and new_value == old_value:
                continue
        causes.append(_cause(error, parts))
    causes.sort(key=lambda c: c["field"])
    return causes


def _cause(error: jsonschema.ValidationError, parts: list[Any]) -> dict[str, str]:
    """Word a jsonschema error the way kube-openapi's validator does."""
    path = _field_path(parts)
    value = error.instance
    if error.validator == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        return {"reason": "FieldValueRequired", "message": "Required value", "field": _field_path([*parts, name])}
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else json.dumps(_go_type(value))
    if error.validator == "type":
        got = _go_type(value)
        want = error.validator_value if isinstance(error.validator_value, str) else error.validator_value[0]
        return {"reason": "FieldValueTypeInvalid", "field": path,
                "message": f'Invalid value: "{got}": {path} in body must be of type {want}: "{got}"'}
    if error.validator == "pattern":
        return {"reason": "FieldValueInvalid", "field": path,
                "message": f"Invalid value: {shown}: {path} in body should match '{error.validator_value}'"}
    if error.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return {"reason": "FieldValueNotSupported", "field": path,
                "message": f"Unsupported value: {shown}: supported values: {allowed}"}
    if error.validator == "maxLength":
        return {"reason": "FieldValueTooLong", "field": path,
                "message": f"Too long: may not be longer than {error.validator_value}"}
    return {"reason": "FieldValueInvalid", "field": path, "message": f"Invalid value: {shown}: {error.message}"}
