"""Request id middleware: one UUID per request, echoed as X-Request-ID, stored on audit rows and in log lines."""

import contextvars
import logging
import re
import uuid

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


class RequestIDMiddleware:
    """Takes a well-formed incoming X-Request-ID (a proxy's) or makes a new one; sets request.id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        try:
            request.id = uuid.UUID(incoming) if _VALID_ID.match(incoming) else uuid.uuid4()
        except ValueError:
            request.id = uuid.uuid4()
        token = _request_id.set(str(request.id))
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = str(request.id)
        return response


class RequestIDLogFilter(logging.Filter):
    """Adds %(request_id)s to every log record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True
