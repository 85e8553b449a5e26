"""Request id: one UUID per request, echoed as X-Request-ID, stored on audit rows, in log lines and in the tasks
the request enqueued (`carry_request_id` puts it into the task; `adopt_request_id` sets it in the worker); and the
Content-Security-Policy header."""

import contextvars
import logging
import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from whitenoise.middleware import WhiteNoiseMiddleware

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# A UUID as proxies write it: canonical with hyphens, or 32 hex digits; anything else gets a fresh id.
_VALID_ID = re.compile(r"\A(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})\Z",
                       re.IGNORECASE)
TASK_KEY = "request_id"  # the key in a django-q2 task package


class SyncAndAsyncMiddleware:
    """The shape every portal middleware shares: it runs in a sync (WSGI) and an async (ASGI) stack alike, so a
    rollout wait never costs a thread. Subclasses define `__call__`, checking `iscoroutinefunction(self)`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)


class RequestIDMiddleware(SyncAndAsyncMiddleware):
    """Takes a well-formed incoming X-Request-ID (a proxy's) or makes a new one; sets request.id. Sync and async."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        self._start(request)
        response = self.get_response(request)
        response["X-Request-ID"] = str(request.id)
        return response

    async def _acall(self, request):
        self._start(request)
        response = await self.get_response(request)
        response["X-Request-ID"] = str(request.id)
        return response

    @staticmethod
    def _start(request) -> None:
        """The id stays set after the response (not reset): Django logs a 4xx/5xx after the middleware returned,
        and that line should carry it too; the next request in this thread (WSGI) or context sets its own."""
        incoming = request.headers.get("X-Request-ID", "")
        try:
            request.id = uuid.UUID(incoming) if _VALID_ID.match(incoming) else uuid.uuid4()
        except ValueError:
            request.id = uuid.uuid4()
        _request_id.set(str(request.id))


def current_request_id() -> str:
    """The request id of the request (or task) running now, "-" outside one."""
    return _request_id.get()


def carry_request_id(sender, task: dict, **kwargs) -> None:
    """django-q2 `pre_enqueue`: the task remembers the request id of the request that enqueued it."""
    if _request_id.get() != "-":
        task[TASK_KEY] = _request_id.get()


def adopt_request_id(sender, task: dict, **kwargs) -> None:
    """django-q2 `pre_execute` (in the worker): log lines of the task carry its request's id ("-" for none)."""
    _request_id.set(str(task.get(TASK_KEY) or "-"))


class RequestIDLogFilter(logging.Filter):
    """Adds %(request_id)s to every log record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, also async-capable (WhiteNoise 6 is sync only, which would make Django run every ASGI request,
    rollout waits included, in a thread of its own). A static file is served from a thread; the rest passes on."""

    async_capable = True

    def __init__(self, get_response=None, settings=django_settings):
        super().__init__(get_response, settings)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


class ContentSecurityPolicyMiddleware(SyncAndAsyncMiddleware):
    """Sends settings.PORTAL_CONTENT_SECURITY_POLICY on every response that has none of its own. Sync and async."""

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._with_policy(self.get_response(request))

    async def _acall(self, request):
        return self._with_policy(await self.get_response(request))

    @staticmethod
    def _with_policy(response):
        policy = django_settings.PORTAL_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
