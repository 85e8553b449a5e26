"""What every test server shares: a free port, closing everything at exit, dying with the test run."""

from __future__ import annotations

import atexit
import contextlib
import socket
import threading

_LIVE: list = []  # everything started, closed at exit even if a test session dies
_LIVE_LOCK = threading.Lock()


def track(obj):
    with _LIVE_LOCK:
        _LIVE.append(obj)
    return obj


@atexit.register
def _close_all() -> None:
    with _LIVE_LOCK:
        live = list(reversed(_LIVE))
        _LIVE.clear()
    for obj in live:
        with contextlib.suppress(Exception):
            obj.close()


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (even by SIGKILL), so a killed
    test run leaves no registry behind. Linux only; it follows the starting *thread*, so start registries from
    a thread that lives as long as they should (pytest fixtures and scripts use the main thread)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux/glibc: the atexit hook still stops registries on a normal exit
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
