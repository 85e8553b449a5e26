"""Reads shared by several entry points (HackSoft's selectors beside the services): the web pages, the API, the
admin and the services read these the same way, so what "a source offers" or "an override's digest history" means
cannot drift between them. Read-only: no writes, no registry calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from overrides.models import DigestObservation, ModulePullOverride, ModuleSource


@dataclass(frozen=True)
class OfferedModule:
    """A module a source offers: found by the portal's discovery and/or reported in the cluster's status
    (`reported`: that status entry, e.g. policy, overridden, version, checksum, error; {} when not reported)."""

    name: str
    discovered: bool
    reported: dict[str, Any] = field(default_factory=dict)


def offered_modules(source: ModuleSource) -> list[OfferedModule]:
    """The modules `source` offers, by name: the portal's last discovery merged with the cluster's status."""
    discovered = {str(name) for name in source.discovered_modules or []}
    reported = {str(m["name"]): m for m in source.status_modules or [] if isinstance(m, dict) and m.get("name")}
    return [OfferedModule(name, name in discovered, reported.get(name, {}))
            for name in sorted(discovered | set(reported))]


def offered_module_names(source: ModuleSource) -> list[str]:
    """The names of `offered_modules(source)`, sorted."""
    return [module.name for module in offered_modules(source)]


def digest_history(override: ModulePullOverride, origin: str | None = None) -> QuerySet[DigestObservation]:
    """The digests an override went through (the registry's and/or the cluster's), newest first: the API's digest
    history and the override page's timeline read it."""
    rows = DigestObservation.objects.filter(override=override)
    if origin is not None:
        rows = rows.filter(origin=origin)
    return rows.order_by("-observed_at", "-id")
