"""`manage.py serve` as `make run` starts it: SIGTERM stops the web server and every qcluster process."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.jobs import BASE_DIR, qcluster_env, wait_for


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return found


def _descendants(pid: int) -> set[int]:
    table = _processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, _, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {p for p in pids if p in table and table[p][2] != "Z"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_serve_stops_every_qcluster_worker():
    log = tempfile.NamedTemporaryFile(prefix="mpo-serve-", suffix=".log", delete=False)  # noqa: SIM115
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(_free_port()), "--workers", "1"], cwd=BASE_DIR,
        env={**qcluster_env(), "PORTAL_Q_WORKERS": "2", "PYTHONUNBUFFERED": "1"}, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    started: set[int] = set()
    try:
        # The dispatcher task serve enqueues at start keeps a worker busy for its whole run.
        wait_for(lambda: "processing" in Path(log.name).read_text(errors="replace")
                 and "run_dispatcher" in Path(log.name).read_text(errors="replace"), timeout=60,
                 what="a qcluster worker running the dispatcher")
        started = _descendants(serve.pid)
        assert len(started) >= 5  # gunicorn master + worker, qcluster, sentinel, workers, monitor, pusher
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        assert _alive(started) == set(), Path(log.name).read_text(errors="replace")[-3000:]
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        for pid in _alive(started | _descendants(serve.pid)):
            os.kill(pid, signal.SIGKILL)
        os.unlink(log.name)
