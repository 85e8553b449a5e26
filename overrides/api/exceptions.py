"""The API's error bodies: `{"<field>": ["message"]}` for validation (dotted API names), `{"detail": ...}` else.

Every error is JSON without a stack trace. Unexpected exceptions should not happen (the views validate and
catch what the services raise), but if one does it is logged with the request id and answered with a short
JSON 500 naming that id, instead of Django's HTML error page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from portal.health import OUTAGE_RETRY_AFTER, is_outage, outage_body
from portal.json_input import PayloadTooLarge, body_limit, too_large_message

logger = logging.getLogger("overrides.api")

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as one level keyed by dotted API field names (`registry.repo`)."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = prefix if key == NON_FIELD and prefix else f"{prefix}.{key}" if prefix else str(key)
            for sub, messages in flatten_errors(value, name).items():
                flat.setdefault(sub, []).extend(messages)
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            for sub, messages in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                flat.setdefault(sub, []).extend(messages)
        return flat
    messages = [str(item) for item in detail] if isinstance(detail, list) else [str(detail)]
    return {prefix or NON_FIELD: messages}


def _broker_outage(exc: Exception) -> bool:
    """The django-q2 Redis broker cannot be reached (a task enqueued outside an after-commit hook)."""
    return type(exc).__module__.startswith("redis") and type(exc).__name__ in ("ConnectionError", "TimeoutError")


def exception_handler(exc: Exception, context: dict) -> Response:
    from overrides.lifetime import OwnershipConflict

    if isinstance(exc, OwnershipConflict):
        # Someone else's override: who holds it, why and since when (see overrides.lifetime).
        return Response(exc.as_dict(), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, RequestDataTooBig):  # Django's own check, when the body was read before a parser ran
        exc = PayloadTooLarge(too_large_message(body_limit()))
    if isinstance(exc, DjangoValidationError):
        # A service refusal a view did not map: keep its message, under the model's field names.
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is not None:
        if isinstance(exc, exceptions.ValidationError):
            response.data = flatten_errors(exc.detail)
        elif response.status_code == 400 and isinstance(response.data, dict) and "detail" in response.data:
            # A body that does not parse: the same 400 shape as any other invalid input.
            response.data = {NON_FIELD: [str(response.data["detail"])]}
        return response
    request = context.get("request")
    if is_outage(exc):  # the database went away: 503 with a retry hint, never a 500 (nothing was changed)
        logger.warning("Database unavailable: %s", type(exc).__name__)
        return Response(outage_body(request), status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": OUTAGE_RETRY_AFTER})
    request_id = str(getattr(request, "id", "") or "")
    if _broker_outage(exc):
        logger.warning("Task broker unavailable: %s", type(exc).__name__)
        return Response({"detail": "The portal's task broker is unavailable; the request was not completed. "
                                   "Retry shortly.", "requestId": request_id},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": OUTAGE_RETRY_AFTER})
    view = context.get("view")
    logger.error("Unexpected error in %s: %s", type(view).__name__ if view else "API", type(exc).__name__,
                 exc_info=exc)
    return Response(
        {"detail": f"Internal error. Quote the request id {request_id} to the portal's operators.",
         "requestId": request_id},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
