"""Request id middleware: one UUID per request, echoed as X-Request-ID, stored on audit rows and in log lines;
and the Content-Security-Policy header."""

import contextvars
import logging
import re
import uuid

from django.conf import settings

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# A UUID as proxies write it: canonical with hyphens, or 32 hex digits; anything else gets a fresh id.
_VALID_ID = re.compile(r"\A(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})\Z",
                       re.IGNORECASE)


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


class ContentSecurityPolicyMiddleware:
    """Sends settings.PORTAL_CONTENT_SECURITY_POLICY on every response that has none of its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.PORTAL_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
