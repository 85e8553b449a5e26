"""A server that accepts TCP connections and never answers: a registry that hangs."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

from tests.registries.local import DEFAULT_PATH
from tests.registries.processes import track


class HangingServer:
    """Accepts TCP connections and never answers: a registry that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.repo = f"{self.host}/{DEFAULT_PATH}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        track(self)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)

    def source(self, **overrides) -> SimpleNamespace:
        values = {"name": "hanging", "repo": self.repo, "scheme": "HTTP", "docker_cfg": "", "ca": ""}
        return SimpleNamespace(**{**values, **overrides})

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for conn in self._held:
            conn.close()
