"""Registry access for the portal: see `registry.client` for the API and why it is built the way it is.

The names below are importable from `registry` directly; they load lazily so that `import registry` (Django
loads the app at start-up) does not import oras and requests.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "image_reference": "registry.client",
    "resolve_digest": "registry.client",
    "discover_modules": "registry.client",
    "list_tags": "registry.client",
    "reset": "registry.client",
    "docker_cfg_credentials": "registry.auth",
    "validate_docker_cfg": "registry.auth",
    "registry_host": "registry.auth",
    "RegistryError": "registry.errors",
    "DockerCfgError": "registry.errors",
    "ErrorKind": "registry.errors",
    "DigestLookup": "registry.errors",
    "ModuleListing": "registry.errors",
    "TagListing": "registry.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
