"""The portal's domain: sources, overrides, their history, the audit trail, API tokens, and the poller's lease,
and the overridden modules as the cluster runs them."""

from .history import ChangeAction, ChangeContext, DigestObservation, DigestOrigin, ObjectChange
from .leases import Lease
from .modules import ClusterModule, ModuleHealth
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
    "ApiToken", "BUILTIN_SOURCE", "ChangeAction", "ChangeContext", "ChannelKind", "ClusterMirrored", "ClusterModule",
    "Delivery", "DeliveryAttempt", "DeliveryState", "DigestObservation", "DigestOrigin", "EventType", "Lease",
    "ModuleHealth", "ModulePullOverride", "ModuleScope", "ModuleSource", "NotificationChannel", "NotificationEvent",
    "NotificationSubscription", "ObjectChange", "Scheme", "SkippedClusterObject", "SubscriptionScope", "SyncState",
    "hash_token",
]
