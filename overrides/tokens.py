"""Personal API tokens: the one place that mints and revokes them (the "My tokens" page, the admin, the command).

A token acts with its owner's permissions and module scopes as they are at request time (see
overrides/api/permissions.py and overrides/scopes.py), so it never has more rights than its user has now; a
deactivated owner's tokens are refused by the authentication. The plaintext is returned once and stored only
as a hash.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from overrides.audit import Actor
from overrides.models import ApiToken

MANAGE_ALL = "overrides.delete_apitoken"  # who may revoke other users' tokens (admins)


def may_manage_all_tokens(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.has_perm(MANAGE_ALL))


@transaction.atomic
def token_create(
    *, actor: Actor, owner, description: str = "", read_only: bool = False, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Mint a token for `owner`; returns (token, plaintext). Only the owner or an admin may mint one."""
    if actor.user is not None and actor.user != owner and not may_manage_all_tokens(actor.user):
        raise PermissionDenied("You may create API tokens only for yourself.")
    if not owner.is_active:
        raise ValidationError({"owner": f'User "{owner.get_username()}" is inactive.'})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    plaintext = ApiToken.generate()
    token = ApiToken(user=owner, description=description, write_enabled=not read_only, expires_at=expires_at)
    token.set_key(plaintext)
    token.full_clean(exclude=["key_hash", "key_hint", "user"])
    token.save()
    return token, plaintext


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> None:
    """Delete a token: its owner or an admin may; it stops working at once."""
    if actor.user is not None and actor.user.pk != token.user_id and not may_manage_all_tokens(actor.user):
        raise PermissionDenied("You may revoke only your own API tokens.")
    ApiToken.objects.filter(pk=token.pk).delete()
