"""ASGI entry point: the shipped web server (gunicorn with uvicorn workers), so rollout waits hold no thread.

Two paths through one application:

- a rollout wait (`ROLLOUT_WAIT_PATH`, an async view) goes through Django's async handler, without Django's
  per-request `ThreadSensitiveContext` (which would give every wait a thread of its own for minutes): its few
  sync bits share the default executor (see `overrides.api.rollout_waits`);
- every other request is served as under WSGI: the whole synchronous middleware chain and view run in one call
  on a thread of this process's pool (`PORTAL_WEB_THREADS` threads), and the event loop only reads the body and
  sends the answer. Django's async handler would instead hop between the loop and a thread for every
  synchronous middleware, twice each, on a thread it starts for every request: measured with bench/api.py, that
  cost about as much CPU as the API's own work.
"""

from __future__ import annotations

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor

import django
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

ROLLOUT_WAIT_PATH = re.compile(r"^/api/v1/overrides/[^/]+/rollout/$")


class PortalASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        from django.conf import settings

        super().__init__()
        self.sync_handler = BaseHandler()
        self.sync_handler.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=settings.PORTAL_WEB_THREADS, thread_name_prefix="web")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and ROLLOUT_WAIT_PATH.match(scope.get("path", "")):
            await self.handle(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # Django's own refusal of other connection types
            return
        await self.handle_in_thread(scope, receive, send)

    async def handle_in_thread(self, scope, receive, send) -> None:
        """Read the body here, answer in one pool thread (middleware and view), send the answer from here."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self.executor, self.respond, scope, body_file)
        try:
            if response.streaming and not response.is_async:  # a file: its parts are read in the pool
                response.streaming_content = self.read_in_pool(response.streaming_content, loop)
            await self.send_response(response, send)
        except (asyncio.CancelledError, OSError):
            pass  # the client went away while the answer was sent
        finally:
            if response.streaming:
                await loop.run_in_executor(self.executor, response.close)
            body_file.close()

    def respond(self, scope, body_file):
        """In a pool thread: the request's whole synchronous life, as WSGIHandler does it. A rendered answer is
        closed here (its `request_finished` returns this thread's database connection); a streaming one is
        closed after it has been sent."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.sync_handler.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response

    async def read_in_pool(self, parts, loop):
        """A synchronous iterator's parts (a file's blocks), each read on a pool thread, as an async iterator."""
        parts = iter(parts)
        while (part := await loop.run_in_executor(self.executor, next, parts, None)) is not None:
            yield part


django.setup(set_prefix=False)
application = PortalASGIHandler()
