"""Render the Kustomize manifests under deploy/ with `kubectl kustomize` (for tests/test_deploy.py and test_rbac.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

DEPLOY_DIR = Path(__file__).resolve().parents[1] / "deploy"
OVERLAYS = ("base", "deckhouse")


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path | str) -> list[dict[str, Any]]:
    """Every object `kubectl kustomize DIRECTORY` prints (a relative name is under deploy/)."""
    path = Path(directory)
    path = path if path.is_absolute() else DEPLOY_DIR / path
    result = subprocess.run([kubectl() or "kubectl", "kustomize", str(path)], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the rendered manifests"
    return found[0]
