"""The SQLite database holds session keys: it and its -wal/-shm files are kept mode 0600, like the key files."""

from __future__ import annotations

import os
from pathlib import Path


def narrow_sqlite_files(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: make the database file and its WAL/SHM private to the portal's user.

    SQLite creates a -wal or -shm file with the mode of the database file, so once the database is 0600 every
    later one is too; this narrows the files of a new database (created by the umask, usually 0644) and those an
    older version left world-readable. Nothing else is touched (PostgreSQL, in-memory databases)."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if existing.stat().st_mode & 0o077:
                os.chmod(existing, 0o600)
        except FileNotFoundError:
            continue
