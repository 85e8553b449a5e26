"""Whether a source offers a module: the rule an override's name must pass where the source's modules are known.

Deckhouse says "The module not found" for an override of a module its source does not offer. The last discovery
may predate the module's first push (a pipeline pushes a new module and upserts at once), so a name missing from
it makes the source's modules be listed again at once, one bounded registry request, and only a name the registry
really lacks is refused, saying when the list was read. The services list again *before* their transaction
(`relist_if_missing`), so no registry request is made while the write holds its locks (on SQLite, the database's
one write lock); `check_module_offered`, inside the transaction, then decides on the fresh list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from overrides.models import ModuleSource
from overrides.polling.checks import record_discovery
from overrides.presentation import format_utc
from overrides.selectors import offered_module_names
from registry.client import discover_modules
from registry.errors import ModuleListing

RELIST_TIMEOUT = (2.0, 3.0)  # (connect, read) seconds of the one listing a module missing from the last one gets


@dataclass
class Relisting:
    """The source's modules, listed again from the registry because a name was missing."""

    listing: ModuleListing
    read_at: datetime


def _relist(source: ModuleSource) -> Relisting:
    listing = discover_modules(source, timeout=RELIST_TIMEOUT)
    relisting = Relisting(listing, timezone.now())
    record_discovery(source.pk, listing, at=relisting.read_at)
    return relisting


def relist_if_missing(name: str, source: ModuleSource | None) -> Relisting | None:
    """Before a write's transaction: list `source`'s modules again when they are known and lack `name`. None when
    nothing was listed (the name is offered, the modules are unknown, or a caller's transaction is open already:
    then `check_module_offered` lists inline)."""
    if source is None or connection.in_atomic_block:
        return None
    offered = offered_module_names(source)
    if not offered or name in offered:
        return None
    return _relist(source)


def check_module_offered(name: str, source: ModuleSource, relisted: Relisting | None = None) -> None:
    """Where the source's modules are known, the override must name one of them: ValidationError on `name`
    otherwise. `relisted`: what `relist_if_missing` listed before the transaction (else it is listed here)."""
    offered = offered_module_names(source)
    if not offered or name in offered:
        return
    relisted = relisted or _relist(source)
    source.refresh_from_db(fields=["discovered_modules", "discovered_at", "discovery_error"])
    offered = offered_module_names(source)
    if name in offered:
        return
    sample = ", ".join(offered[:10]) + (" …" if len(offered) > 10 else "") if offered else "none"
    if relisted.listing.ok:
        message = (f'Source "{source.name}" does not offer a module "{name}": its modules, listed from the '
                   f"registry just now ({format_utc(relisted.read_at)}), are: {sample}.")
    else:
        when = f"listed {format_utc(source.discovered_at)}" if source.discovered_at else "as the cluster reports them"
        message = (f'Source "{source.name}" did not offer a module "{name}" in its last known modules ({when}: '
                   f"{sample}), and listing them again just now failed: {relisted.listing.error.message}")
    raise ValidationError({"name": message})
