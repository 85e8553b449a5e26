"""Label and field selectors with the API server's syntax and error wording."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """An unparsable selector; the API server answers 400 BadRequest."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` sets."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


_SET = re.compile(r"^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ = re.compile(r"^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$")
_KEY = re.compile(r"^(!?)\s*([^\s!=(),]+)$")


def label_matcher(selector: str | None) -> Matcher:
    """Parse a label selector (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``)."""
    requirements: list[Matcher] = []
    for part in _split(selector or ""):
        if match := _SET.match(part):
            key, operator = match.group(1), match.group(2)
            values = {v.strip() for v in match.group(3).split(",") if v.strip()}
            if operator == "in":
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                requirements.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match := _EQ.match(part):
            key, operator, value = match.groups()
            if operator == "!=":
                requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                requirements.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif match := _KEY.match(part):
            negate, key = match.group(1) == "!", match.group(2)
            requirements.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: found '{part}', expected: identifier")

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def field_matcher(selector: str | None) -> Matcher:
    """Parse a field selector; custom resources support only ``metadata.name`` and ``metadata.namespace``."""
    requirements: list[Matcher] = []
    for part in _split(selector or ""):
        match = _EQ.match(part)
        if not match:
            raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")
        key, operator, value = match.groups()
        if key not in ("metadata.name", "metadata.namespace"):
            raise SelectorError(f'"{key}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        field = key.split(".", 1)[1]
        if operator == "!=":
            requirements.append(lambda obj, f=field, v=value: obj["metadata"].get(f, "") != v)
        else:
            requirements.append(lambda obj, f=field, v=value: obj["metadata"].get(f, "") == v)
    return lambda obj: all(requirement(obj) for requirement in requirements)
