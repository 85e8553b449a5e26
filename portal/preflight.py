"""Load the settings once before a process starts, and stop with one line when one is missing or malformed.

`python -m portal.preflight` exits 0 when the settings load, else prints `mpo-portal: <what is wrong>` to stderr
and exits 2; the container's entrypoint runs it before every role, so a pod with a broken Secret or ConfigMap
says which variable in its first log line instead of a stack trace from inside gunicorn or qcluster.
`manage.py` goes through `load_settings_or_exit()` as well.
"""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured

EXIT_BAD_SETTINGS = 2


def load_settings_or_exit() -> None:
    """Import the settings module; on a settings error print one line and exit(2)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - evaluating the lazy settings imports the module
    except (ImproperlyConfigured, ValueError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"mpo-portal: invalid settings: {message}\n")
        sys.exit(EXIT_BAD_SETTINGS)


def container_problems() -> list[str]:
    """What a production container needs beyond the settings module loading: real Fernet keys and a database
    server (SQLite under a read-only root file system cannot work)."""
    from cryptography.fernet import Fernet
    from django.conf import settings

    problems = []
    for key in settings.PORTAL_ENCRYPTION_KEYS:
        try:
            Fernet(key)
        except ValueError:
            problems.append("PORTAL_ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe base64 bytes)")
            break
    if settings.PRODUCTION and not os.environ.get("DATABASE_URL", "").strip():
        problems.append("DATABASE_URL must be set when PORTAL_PRODUCTION=1, e.g. postgres://user:pass@host/db")
    return problems


if __name__ == "__main__":
    load_settings_or_exit()
    for problem in container_problems():
        sys.stderr.write(f"mpo-portal: invalid settings: {problem}\n")
        sys.exit(EXIT_BAD_SETTINGS)
