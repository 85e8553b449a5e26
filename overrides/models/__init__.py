"""The portal's domain: sources, overrides, their history, the audit trail, API tokens, and the poller's lease."""

from .history import ChangeAction, ChangeContext, DigestObservation, DigestOrigin, ObjectChange
from .leases import Lease
from .pulloverrides import ModulePullOverride
from .scopes import ModuleScope
from .skipped import SkippedClusterObject
from .sources import BUILTIN_SOURCE, ModuleSource, Scheme
from .sync import ClusterMirrored, SyncState
from .tokens import ApiToken, hash_token

__all__ = [
    "ApiToken", "BUILTIN_SOURCE", "ChangeAction", "ChangeContext", "ClusterMirrored", "DigestObservation",
    "DigestOrigin", "Lease", "ModulePullOverride", "ModuleScope", "ModuleSource", "ObjectChange", "Scheme",
    "SkippedClusterObject",
    "SyncState", "hash_token",
]
