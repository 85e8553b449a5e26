"""Create the first superuser when there is none (used by `make run`)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an admin superuser if none exists (password from PORTAL_ADMIN_PASSWORD, else printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("PORTAL_ADMIN_USER", "admin"))
        parser.add_argument("--from-env", action="store_true",
                            help="create one only with PORTAL_ADMIN_PASSWORD (never print a generated password "
                                 "into a pod's log); else say how to create one")

    def handle(self, *args, username: str, from_env: bool = False, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = os.environ.get("PORTAL_ADMIN_PASSWORD", "")
        if from_env and not password:
            self.stdout.write("No superuser yet: set PORTAL_ADMIN_PASSWORD in the Secret and run the migrate role "
                              "again, or run `manage.py createsuperuser` in a web pod.")
            return
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                f"Created superuser '{username}' with password: {password}\n"
                "It is shown only this once; change it in the admin, or set PORTAL_ADMIN_PASSWORD next time."
            )
        else:
            self.stdout.write(f"Created superuser '{username}' (password from PORTAL_ADMIN_PASSWORD).")
