"""ASGI entry point: the shipped web server (gunicorn with uvicorn workers), so rollout waits hold no thread.

Django gives every ASGI request a thread of its own for the request's whole life (its `ThreadSensitiveContext`:
the sync signal receivers at the start of a request already start it), idle or not. A rollout wait lasts
minutes and does its sync work in the shared executor (`overrides.api.rollout_waits`), so its requests run
without that context: their remaining sync bits (signal receivers, rendering) share one thread instead.
"""

import os
import re

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

ROLLOUT_WAIT_PATH = re.compile(r"^/api/v1/overrides/[^/]+/rollout/$")


class PortalASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and ROLLOUT_WAIT_PATH.match(scope.get("path", "")):
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


django.setup(set_prefix=False)
application = PortalASGIHandler()
