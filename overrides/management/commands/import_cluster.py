"""`manage.py import_cluster`: read the cluster's ModuleSources and ModulePullOverrides into the portal once.

Runs one read-back (imports, take-overs, deletions seen in the cluster, status) and applies nothing. Prints what
it found and did; exits with status 1 and a clear message when cluster sync is off or the cluster is unreachable.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from overrides.cluster.readback import read_back


class Command(BaseCommand):
    help = "Import the cluster's ModuleSources and ModulePullOverrides (one read-back; nothing is applied)."

    def handle(self, *args, **options) -> None:
        summary = read_back()
        if not summary.ok:
            raise CommandError(f"Nothing imported. {summary.error}")
        for line in summary.lines():
            self.stdout.write(line)
