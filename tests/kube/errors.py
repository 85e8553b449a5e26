"""API errors as ``kind: Status`` objects, worded like kube-apiserver's."""

from __future__ import annotations

from typing import Any

from tests.kube.schema import GROUP

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}
FAULT_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the request",
}


class ApiError(Exception):
    """An API failure: ``code`` is the HTTP status, ``to_status()`` the body the server sends."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": self.message, "reason": self.reason}
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def resource_not_found() -> ApiError:
    """What the delegate chain answers for a path no handler serves (unserved version, unknown resource)."""
    return ApiError(404, "the server could not find the requested resource", details={})


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, f'{plural}.{GROUP} "{name}" not found',
                    details={"name": name, "group": GROUP, "kind": plural})


def already_exists(plural: str, name: str) -> ApiError:
    return ApiError(409, f'{plural}.{GROUP} "{name}" already exists', reason="AlreadyExists",
                    details={"name": name, "group": GROUP, "kind": plural})


def conflict(plural: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, f'Operation cannot be fulfilled on {plural}.{GROUP} "{name}": {why}',
                    details={"name": name, "group": GROUP, "kind": plural})


def invalid(kind: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid: ``Kind.group "name" is invalid: field: message`` (bracketed when several)."""
    texts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(422, f'{kind}.{GROUP} "{name}" is invalid: {summary}',
                    details={"name": name, "group": GROUP, "kind": kind, "causes": causes})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource", details={})


def unsupported_patch(content_type: str) -> ApiError:
    return ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                         f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                         f" (got {content_type})")
