"""Files under var/ that hold secrets are private to the portal's user (mode 0600)."""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]

SHOW_MODES = """
import os
from django.conf import settings
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS probe (x)")
    cursor.execute("INSERT INTO probe VALUES (1)")
    name = settings.DATABASES["default"]["NAME"]
    for suffix in ("", "-wal", "-shm"):
        print(suffix or "db", oct(os.stat(name + suffix).st_mode & 0o777))
"""


def _shell(var_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env = {**clean, "PORTAL_VAR_DIR": str(var_dir)}
    subprocess.run([sys.executable, "-m", "portal.devkeys"], cwd=BASE_DIR, env=env, check=True, capture_output=True,
                   timeout=60)  # what `make run` does first: var/ and its development keys
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW_MODES], cwd=BASE_DIR, capture_output=True, text=True,
        timeout=60, env={**clean, "PORTAL_VAR_DIR": str(var_dir)}, preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines() if line.startswith(("db ", "-wal ", "-shm ")))


def test_sqlite_database_and_its_wal_are_private(tmp_path):
    var_dir = tmp_path / "var"
    assert _shell(var_dir) == {"db": "0o600", "-wal": "0o600", "-shm": "0o600"}
    # A database left world-readable by an older version is narrowed at the next start.
    (var_dir / "portal.sqlite3").chmod(0o644)
    assert _shell(var_dir)["db"] == "0o600"
