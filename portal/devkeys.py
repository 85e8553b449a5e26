"""Development keys: generated once under var/ by `make run` (`python -m portal.devkeys`), never by the settings.

portal/settings.py only reads them, so importing the settings writes nothing; when a key is neither in the
environment nor under var/, start-up stops with one line saying how to make it. Production passes real keys in
the environment (PORTAL_PRODUCTION=1 never reads these files).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    return secrets.token_urlsafe(50)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


# setting (environment variable) -> (file under var/, how to make one)
DEV_KEYS = {
    "PORTAL_SECRET_KEY": ("dev-secret-key", _secret_key),
    "PORTAL_ENCRYPTION_KEYS": ("dev-encryption-key", _fernet_key),
}
HOW_TO_MAKE = "run `make dev-keys` (or `.venv/bin/python -m portal.devkeys`)"


def var_dir() -> Path:
    """Where the portal keeps its development state (setting PORTAL_VAR_DIR, default var/ of the checkout)."""
    return Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def read_dev_key(directory: Path, name: str) -> str:
    """The development key for setting `name` kept under `directory`, or "" when there is none."""
    try:
        return (directory / DEV_KEYS[name][0]).read_text().strip()
    except FileNotFoundError:
        return ""


def missing_key_message(directory: Path, name: str) -> str:
    """The one line start-up prints when setting `name` has no value."""
    return (f"{name} is not set and {directory / DEV_KEYS[name][0]} does not exist: {HOW_TO_MAKE} for development "
            "keys, or set it (README.md, 'Settings')")


def ensure_dev_keys(directory: Path) -> list[Path]:
    """Create `directory` and every missing development key in it (mode 0600); returns the files created.
    An existing key is kept, so restarts keep sessions and stored credentials readable."""
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    for filename, make in DEV_KEYS.values():
        path = directory / filename
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
        created.append(path)
    return created


def main() -> None:
    directory = var_dir()
    created = ensure_dev_keys(directory)
    for path in created:
        print(f"generated {path}")
    if not created:
        print(f"development keys already in {directory}", file=sys.stderr)


if __name__ == "__main__":
    main()
