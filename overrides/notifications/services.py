"""The writers of notification channels and subscriptions (the UI and the admin call these).

A personal channel belongs to its user, who manages it; global channels (no user) are managed by admins
(superusers, or users with the model permission `overrides.change_notificationchannel`). Targets are checked here
(`channels.validate_target`) and then stored encrypted; only `target_hint` is ever shown again.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from overrides.models import (
    ChannelKind,
    EventType,
    ModuleSource,
    NotificationChannel,
    NotificationSubscription,
    SubscriptionScope,
)
from overrides.notifications.channels import validate_target

GLOBAL_PERM = "overrides.change_notificationchannel"


def may_manage_global(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or user.has_perm(GLOBAL_PERM)))


def may_manage(user, channel: NotificationChannel) -> bool:
    if channel.user_id is None:
        return may_manage_global(user)
    return bool(user and user.is_authenticated and (channel.user_id == user.pk or user.is_superuser))


def _require(user, channel: NotificationChannel) -> None:
    if not may_manage(user, channel):
        raise PermissionDenied("You may not change this channel.")


def _clean_subscription(channel: NotificationChannel, *, event_types: Iterable[str], scope: str,
                        source: ModuleSource | None, module_patterns: str) -> NotificationSubscription:
    types = sorted(set(event_types or []))
    unknown = [t for t in types if t not in EventType.values]
    if unknown:
        raise ValidationError({"event_types": f"Unknown event types: {', '.join(unknown)}."})
    if scope not in SubscriptionScope.values:
        raise ValidationError({"scope": "Choose everything, a source, module patterns or overrides I own."})
    patterns = ", ".join(p.strip() for p in (module_patterns or "").replace(" ", ",").split(",") if p.strip())
    if scope == SubscriptionScope.SOURCE and source is None:
        raise ValidationError({"source": "Choose the source whose overrides this channel hears about."})
    if scope == SubscriptionScope.MODULES and not patterns:
        raise ValidationError({"module_patterns": "Give one or more module name patterns, e.g. echo, team-*."})
    if scope == SubscriptionScope.MINE and channel.user_id is None:
        raise ValidationError({"scope": '"Overrides I own" needs a personal channel: a global one has no owner.'})
    return NotificationSubscription(channel=channel, event_types=types, scope=scope,
                                    source=source if scope == SubscriptionScope.SOURCE else None,
                                    module_patterns=patterns if scope == SubscriptionScope.MODULES else "")


@transaction.atomic
def channel_create(*, user, name: str, kind: str, target: str, secret: str = "", is_global: bool = False,
                   own_failures: bool = True, portal_host: str | None = None,
                   subscription: dict | None = None) -> NotificationChannel:
    """A new channel (personal, or global for admins), with a first subscription when given."""
    if is_global and not may_manage_global(user):
        raise PermissionDenied("Only admins create global channels.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the channel a name."})
    if kind not in ChannelKind.values:
        raise ValidationError({"kind": "Choose a webhook, Slack, Teams or e-mail."})
    hint = validate_target(kind, target, portal_host=portal_host)
    if kind != ChannelKind.WEBHOOK:
        secret = ""
    channel = NotificationChannel(name=name[:100], kind=kind, user=None if is_global else user,
                                  target=target.strip(), target_hint=hint, secret=(secret or "").strip(),
                                  own_failures=own_failures and not is_global)
    channel.save()
    if subscription is not None:
        _clean_subscription(channel, **subscription).save()
    return channel


def subscription_add(*, user, channel: NotificationChannel, event_types: Iterable[str] = (),
                     scope: str = SubscriptionScope.ALL, source: ModuleSource | None = None,
                     module_patterns: str = "") -> NotificationSubscription:
    _require(user, channel)
    subscription = _clean_subscription(channel, event_types=event_types, scope=scope, source=source,
                                       module_patterns=module_patterns)
    subscription.save()
    return subscription


def subscription_delete(*, user, subscription: NotificationSubscription) -> None:
    _require(user, subscription.channel)
    subscription.delete()


def channel_set_enabled(*, user, channel: NotificationChannel, enabled: bool) -> None:
    _require(user, channel)
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=enabled)


def channel_delete(*, user, channel: NotificationChannel) -> None:
    """The channel, its subscriptions and its delivery records go."""
    _require(user, channel)
    channel.delete()
