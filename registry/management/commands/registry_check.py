"""`manage.py registry_check SOURCE [MODULE TAG]`: ask a ModuleSource's registry what the portal would ask it.

Without MODULE/TAG it lists the modules discovered in the source's repo; with them it prints the image reference
and its digest. A registry failure prints the error (kind and message) and exits with status 1.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.client import discover_modules, resolve_digest


def load_source(name: str):
    """The ModuleSource named `name`; CommandError naming the known sources when there is none."""
    from overrides.models import ModuleSource

    try:
        return ModuleSource.objects.get(name=name)
    except ModuleSource.DoesNotExist:
        known = ", ".join(ModuleSource.objects.order_by("name").values_list("name", flat=True)[:20])
        hint = f" Known sources: {known}." if known else " There are no ModuleSources yet."
        raise CommandError(f'ModuleSource "{name}" does not exist.{hint}') from None


class Command(BaseCommand):
    help = "Check a ModuleSource's registry: list its modules, or resolve the digest of MODULE:TAG."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="ModuleSource name")
        parser.add_argument("module", nargs="?", help="module name (with TAG: resolve one digest)")
        parser.add_argument("tag", nargs="?", help="image tag of the module")

    def handle(self, *args, **options) -> None:
        if (options["module"] is None) != (options["tag"] is None):
            raise CommandError("Give both MODULE and TAG, or neither.")
        source = load_source(options["source"])
        scheme = str(getattr(source, "scheme", "") or "HTTPS")
        self.stdout.write(f"ModuleSource {source.name}: {scheme.lower()}://{source.repo}")
        if options["module"] is None:
            listing = discover_modules(source)
            if listing.error is not None:
                self._fail(listing.error)
            more = " (truncated at the limit)" if listing.truncated else ""
            self.stdout.write(f"{len(listing.modules)} modules{more}:")
            for module in listing.modules:
                self.stdout.write(f"  {module}")
            return
        lookup = resolve_digest(source, options["module"], options["tag"])
        if lookup.error is not None:
            self._fail(lookup.error)
        self.stdout.write(f"{lookup.reference} {lookup.digest}")

    def _fail(self, error) -> None:
        self.stderr.write(f"{error.kind}: {error.message}")
        sys.exit(1)
