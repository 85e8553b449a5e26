"""The portal's domain: sources, overrides, their history, the audit trail, API tokens, and the poller's lease."""

from .history import ChangeAction, ChangeContext, DigestObservation, DigestOrigin, ObjectChange
from .leases import Lease
from .notifications import (
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EventType,
    NotificationChannel,
    NotificationEvent,
    NotificationSubscription,
    SubscriptionScope,
)
from .pulloverrides import ModulePullOverride
from .scopes import ModuleScope
from .skipped import SkippedClusterObject
from .sources import BUILTIN_SOURCE, ModuleSource, Scheme
from .sync import ClusterMirrored, SyncState
from .tokens import ApiToken, hash_token

__all__ = [
    "ApiToken", "BUILTIN_SOURCE", "ChangeAction", "ChangeContext", "ChannelKind", "ClusterMirrored", "Delivery",
    "DeliveryAttempt", "DeliveryState", "DigestObservation", "DigestOrigin", "EventType", "Lease",
    "ModulePullOverride", "ModuleScope", "ModuleSource", "NotificationChannel", "NotificationEvent",
    "NotificationSubscription", "ObjectChange", "Scheme", "SkippedClusterObject", "SubscriptionScope", "SyncState",
    "hash_token",
]
