"""`manage.py create_api_token USERNAME [--read-only] [--expires-days N] [--description TEXT]`.

Prints what was created, then the token alone on the last line of stdout (so a script can take it with
`tail -n1`). The token is stored only as a hash: this is the one time it is shown.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from overrides.audit import Actor
from overrides.models import ApiToken, ChangeContext
from overrides.tokens import token_create


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Create an API token for a user and print it once (alone on the last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The token's owner; the token acts with this user's permissions.")
        parser.add_argument("--read-only", action="store_true", help="Only GET/HEAD requests (no writes).")
        parser.add_argument("--expires-days", type=positive_int, default=None, metavar="N",
                            help="Expire after N days (default: never).")
        parser.add_argument("--description", default="", help="What the token is for, e.g. a CI project.")

    @sensitive_variables("plaintext")
    def handle(self, *args, username: str, read_only: bool, expires_days: int | None, description: str, **options):
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f'No user "{username}". Create one first (manage.py createsuperuser or the admin).')
        if not user.is_active:
            raise CommandError(f'User "{username}" is inactive.')
        if len(description) > ApiToken._meta.get_field("description").max_length:
            raise CommandError("The description is too long (at most 200 characters).")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            token, plaintext = token_create(actor=Actor.system(ChangeContext.CLI), owner=user,
                                            description=description, read_only=read_only, expires_at=expires_at)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        expiry = token.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC") if token.expires_at else "never"
        access = "read-only" if read_only else "read and write"
        self.stdout.write(f"Created a {access} API token for {username} (expires: {expiry}). It is shown only "
                          "once: store it now. Use it as `Authorization: Bearer <token>`.")
        self.stdout.write(plaintext)
