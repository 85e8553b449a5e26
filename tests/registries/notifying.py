"""A registry that POSTs push events to an endpoint (distribution `notifications.endpoints`)."""

from __future__ import annotations

from typing import Any

from tests.registries.local import LocalRegistry


class NotifyingRegistry(LocalRegistry):
    """A LocalRegistry whose config adds a notification endpoint (CNCF distribution `notifications.endpoints`):
    every tag push is POSTed to `endpoint` as an events envelope, authenticated with the shared secret."""

    def __init__(self, endpoint: str, secret: str, **kwargs: Any) -> None:
        self.endpoint, self.secret = endpoint, secret
        super().__init__(**kwargs)

    def _write_config(self) -> None:
        super()._write_config()
        with open(self.config, "a") as out:
            out.write("\n".join([
                "notifications:",
                "  endpoints:",
                "    - name: portal",
                f"      url: {self.endpoint}",
                "      headers:",
                f"        Authorization: [\"Bearer {self.secret}\"]",
                "      timeout: 2s",
                "      threshold: 3",
                "      backoff: 1s",
                "      ignore:",
                "        mediatypes: [application/octet-stream]",
                "        actions: [pull]",
            ]) + "\n")
