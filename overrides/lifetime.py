"""Override lifetime and ownership: who holds a module, why, until when; and the scheduler's expiry.

An override belongs to the user who created it (or the CI token's user); each write by its owner moves its
expiry forward by `PORTAL_OVERRIDE_TTL`; a write by someone else is refused (`OwnershipConflict`, a 409) unless it
asks to take over. Imported CRs have no owner and no expiry until a user's write claims them. Writes without a
user (scheduler, cluster read-back, commands) are not subject to ownership.

The services (`overrides.services`) call `gate_write()` and `apply_write()` at the start of every write: this
module holds the rule, the services decide when it applies. The scheduler's side (expiry and reminders) is
`overrides.expiry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from overrides.durations import parse_duration
from overrides.models import ModulePullOverride

NEVER = "never"
FOREVER_PERM = "overrides.keep_override_forever"
LIFETIME_COLUMNS = ["owner", "owned_since", "reason", "expires_at", "reminded_at"]


def ttl() -> timedelta:
    return settings.PORTAL_OVERRIDE_TTL


def reminder_lead() -> timedelta:
    return settings.PORTAL_OVERRIDE_REMINDER


class OwnershipConflict(Exception):
    """A write to someone else's override without `take_over`: the API answers 409 with who holds it."""

    def __init__(self, override: ModulePullOverride) -> None:
        self.owner = override.owner.get_username() if override.owner_id else ""
        self.reason = override.reason
        self.since = override.owned_since
        self.expires_at = override.expires_at
        since = f" since {self.since:%Y-%m-%d %H:%M} UTC" if self.since else ""
        why = f' ("{self.reason}")' if self.reason else ""
        super().__init__(f'Module "{override.name}" is held by {self.owner}{since}{why}. Ask them, or take it over '
                         "(takeOver: true); they will be notified.")

    def as_dict(self) -> dict[str, Any]:
        return {"detail": str(self), "owner": self.owner, "reason": self.reason,
                "ownedSince": self.since.isoformat() if self.since else None,
                "expiresAt": self.expires_at.isoformat() if self.expires_at else None}


def lifetime_snapshot(override: ModulePullOverride) -> dict[str, Any]:
    """The audited lifetime of an override (beside the spec snapshot of `overrides.audit.snapshot`)."""
    return {"owner": override.owner.get_username() if override.owner_id else None, "reason": override.reason,
            "expiresAt": override.expires_at.isoformat() if override.expires_at else None}


def _user(actor) -> Any:
    user = actor.user
    return user if user is not None and getattr(user, "is_authenticated", False) and user.pk else None


def resolve_expiry(value: Any, *, actor, now: datetime) -> datetime | None:
    """An explicit expiry from the API or UI: a datetime, an ISO 8601 text, a duration from now (`3d`), or "never"
    (only with the `keep_override_forever` permission). ValidationError on `expires_at` otherwise."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == NEVER:
            user = _user(actor)
            if user is not None and not user.has_perm(FOREVER_PERM):
                raise ValidationError({"expires_at": '"never" needs the permission "Can keep an override without '
                                                     'expiry"; give a date or a duration such as 7d.'})
            return None
        parsed = parse_datetime(text) if "-" in text else None
        if parsed is None:
            try:
                return now + parse_duration(text)
            except ValueError as exc:
                raise ValidationError({"expires_at": f"{exc} Or give an ISO 8601 date and time, or never."}) from None
        value = parsed
    if not isinstance(value, datetime):
        raise ValidationError({"expires_at": "Give a date and time, a duration such as 7d, or never."})
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.utc)
    if value <= now:
        raise ValidationError({"expires_at": f"{value:%Y-%m-%d %H:%M:%S} UTC is in the past."})
    return value


@dataclass
class WriteGate:
    """What a write does to ownership: `kind` is system (no user), owner, claim or take-over."""

    kind: str
    previous_owner: Any = None


def gate_write(override: ModulePullOverride, actor, *, take_over: bool = False) -> WriteGate:
    """The ownership rule for a write (update, renew, delete) by `actor`; raises `OwnershipConflict`."""
    user = _user(actor)
    if user is None:
        return WriteGate("system")
    if override.owner_id is None:
        return WriteGate("claim")
    if override.owner_id == user.pk:
        return WriteGate("owner")
    if take_over:
        return WriteGate("take-over", previous_owner=override.owner)
    raise OwnershipConflict(override)


def apply_write(override: ModulePullOverride, actor, gate: WriteGate, *, now: datetime,
                expires: Any = None, reason: str | None = None) -> bool:
    """Ownership and expiry after an allowed write (in memory; the caller saves `LIFETIME_COLUMNS`).

    A claim or take-over makes the actor the owner; a write by the owner (or the new owner) moves the expiry
    forward to now + TTL (never backward, and "never" stays never) unless `expires` sets it explicitly. Returns
    whether anything changed."""
    before = (override.owner_id, override.owned_since, override.reason, override.expires_at)
    if gate.kind in ("claim", "take-over"):
        override.owner, override.owned_since = _user(actor), now
        override.expires_at = now + ttl()
    if expires is not None:
        override.expires_at = resolve_expiry(expires, actor=actor, now=now)
    elif gate.kind == "owner" and override.expires_at is not None:
        override.expires_at = max(override.expires_at, now + ttl())
    if reason is not None:
        override.reason = reason.strip()[:500]
    if override.expires_at != before[3]:
        override.reminded_at = None
    return (override.owner_id, override.owned_since, override.reason, override.expires_at) != before


def start_lifetime(override: ModulePullOverride, actor, *, now: datetime, expires: Any = None,
                   reason: str = "") -> None:
    """A new (or revived) override: owned by the actor's user, expiring after the TTL unless told otherwise."""
    user = _user(actor)
    override.owner, override.owned_since = user, (now if user is not None else None)
    override.reason = (reason or "").strip()[:500]
    override.expires_at = resolve_expiry(expires, actor=actor, now=now) if expires is not None else now + ttl()
    override.reminded_at = None


def owner_bump(override: ModulePullOverride, actor) -> bool:
    """A repeated upsert that changes nothing, by the owner: only the expiry moves (bookkeeping, no audit row).
    False when the actor is not the owner (the caller takes the full write path, which says why)."""
    user = _user(actor)
    if user is None:
        return True
    if override.owner_id != user.pk:
        return False
    if override.expires_at is not None:
        new = timezone.now() + ttl()
        if new > override.expires_at:
            ModulePullOverride.objects.filter(pk=override.pk, owner=user).update(expires_at=new, reminded_at=None)
            override.expires_at, override.reminded_at = new, None
    return True
