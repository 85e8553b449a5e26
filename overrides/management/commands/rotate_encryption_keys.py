"""Re-encrypt every stored credential with the first key of PORTAL_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from overrides.models import ModuleSource


class Command(BaseCommand):
    help = "Re-encrypt stored registry credentials with the newest key, so older keys can be dropped."

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for source in ModuleSource.all_objects.exclude(docker_cfg=""):
                # A bookkeeping write: the credential itself does not change, so no audit row.
                ModuleSource.all_objects.filter(pk=source.pk).update(docker_cfg=source.docker_cfg)
                count += 1
        self.stdout.write(f"Re-encrypted the credentials of {count} source(s) with the first key.")
