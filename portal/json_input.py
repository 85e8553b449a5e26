"""The one rule for JSON that comes from outside (API bodies, registry webhooks, a dockerCfg, registry answers).

`json.loads` alone turns hostile input into a 500: nesting a few hundred levels deep raises RecursionError
(not ValueError) in the decoder or in whatever walks the result, and an integer of more than 4300 digits
raises a ValueError that is not a JSONDecodeError. `parse_json()` refuses both up front, and NaN/Infinity,
with a `JsonInputError` (a ValueError) whose message says what is wrong; `JSONBodyParser` is the DRF parser
built on it, which also answers a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` with 413.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32  # the portal's own documents nest 4 levels; a docker config.json or a registry event about 5
MAX_INT_DIGITS = 64

# A JSON string (escapes included), then the brackets outside strings: enough to measure nesting without parsing.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class JsonInputError(ValueError):
    """Input that is not JSON the portal accepts; the message is safe to show to the sender."""


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in `text` (stops counting once past `limit`)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING.sub('""', text)):
        if bracket in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonInputError(f"A number has more than {MAX_INT_DIGITS} digits.")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonInputError(f"The number {text[:20]} is out of range.")
    return value


def _constant(name: str) -> None:
    raise JsonInputError(f"{name} is not a JSON value.")


def parse_json(data: bytes | str, *, what: str = "The body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON from outside; JsonInputError (naming `what`) for anything the portal will not accept."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInputError(f"{what} is not UTF-8 text.") from None
    if nesting_depth(data, max_depth) > max_depth:
        raise JsonInputError(f"{what} nests arrays or objects more than {max_depth} levels deep.")
    try:
        return json.loads(data, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JsonInputError as exc:
        raise JsonInputError(f"{what} is not acceptable JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") \
            from None
    except (ValueError, RecursionError):
        raise JsonInputError(f"{what} is not valid JSON.") from None


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def body_limit() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."


class JSONBodyParser(JSONParser):
    """DRF's JSON parser with `parse_json()`'s rules and the upload limit (400 / 413 with a JSON reason)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = body_limit()
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if limit is not None and declared and str(declared).isdigit() and int(declared) > limit:
            raise PayloadTooLarge(too_large_message(limit))
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(too_large_message(limit))
        try:
            return parse_json(raw.decode(encoding))
        except UnicodeDecodeError:
            raise exceptions.ParseError(f"The body is not {encoding} text.") from None
        except JsonInputError as exc:
            raise exceptions.ParseError(str(exc)) from None
