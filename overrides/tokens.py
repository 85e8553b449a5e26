"""The one service for API tokens: create (plaintext returned once) and revoke, each with its audit row.

The admin, `manage.py create_api_token` and any later self-service page call these, so the rule cannot drift:
a token acts as its owner, so only a superuser may create or revoke a token of someone else, and a token's
owner is fixed at creation (`ApiToken.save()` refuses a change too). Audit rows describe the token (hint,
owner, access, expiry), never its plaintext or hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from overrides.audit import Actor, record_change
from overrides.models import ApiToken, ChangeAction, ChangeContext

OTHER_OWNER = "Only a superuser can create or revoke an API token of another user."


def _as_actor(actor: AbstractBaseUser | Actor) -> Actor:
    """A plain user acts from the web; callers with a request or the CLI hand in an Actor (context, request id)."""
    return actor if isinstance(actor, Actor) else Actor(context=ChangeContext.WEB, user=actor)


def _may_act_for(actor: Actor, owner) -> bool:
    """A command run without a user has shell access to the portal (full control); a user acts for themselves,
    a superuser for anyone."""
    user = actor.user
    if user is None:
        return actor.context == ChangeContext.CLI
    return bool(user.is_active and (user.is_superuser or user.pk == owner.pk))


def token_snapshot(token: ApiToken) -> dict[str, Any]:
    """What the audit keeps of a token: never the plaintext nor the hash."""
    return {
        "hint": token.key_hint,
        "owner": token.user.get_username(),
        "description": token.description,
        "writeEnabled": token.write_enabled,
        "expiresAt": token.expires_at.isoformat() if token.expires_at else None,
    }


@sensitive_variables("plaintext")
@transaction.atomic
def token_create(
    *,
    actor: AbstractBaseUser | Actor,
    owner: AbstractBaseUser,
    description: str = "",
    read_only: bool = False,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token of `owner`; returns it and its plaintext, which exists only in this return value.

    Raises PermissionDenied when `actor` may not create tokens for `owner`, ValidationError for bad input
    (an inactive owner, a description too long).
    """
    who = _as_actor(actor)
    if not _may_act_for(who, owner):
        raise PermissionDenied(OTHER_OWNER)
    if not owner.is_active:
        raise ValidationError({"user": f'User "{owner.get_username()}" is inactive: it cannot own a token.'})
    plaintext = ApiToken.generate()
    token = ApiToken(user=owner, description=description, write_enabled=not read_only, expires_at=expires_at)
    token.set_key(plaintext)
    token.full_clean()
    token.save()
    record_change(actor=who, action=ChangeAction.CREATE, obj=token, before=None, after=token_snapshot(token))
    return token, plaintext


@transaction.atomic
def token_revoke(*, actor: AbstractBaseUser | Actor, token: ApiToken) -> None:
    """Delete a token (it stops working at once); its owner or a superuser may."""
    who = _as_actor(actor)
    if not _may_act_for(who, token.user):
        raise PermissionDenied(OTHER_OWNER)
    before = token_snapshot(token)
    pk = token.pk
    token.delete()
    token.pk = pk  # the audit row names the deleted token's id
    record_change(actor=who, action=ChangeAction.DELETE, obj=token, before=before, after=None)
