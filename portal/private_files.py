"""The SQLite database holds session keys: it and its -wal and -shm files are private (mode 0600), like the key
files under var/. Narrowed when a connection opens, not when the settings are imported (importing the settings
writes nothing); a database left world-readable by an older version is narrowed at the next start."""

from __future__ import annotations

from pathlib import Path

from django.db.backends.signals import connection_created


def narrow_sqlite_files(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if existing.stat().st_mode & 0o077:
                existing.chmod(0o600)
        except OSError:
            continue  # not created yet (-wal/-shm appear with the first write, with the database's mode)


def connect() -> None:
    connection_created.connect(narrow_sqlite_files, dispatch_uid="portal.private_files")
