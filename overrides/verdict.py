"""The rollout verdict: does the cluster run the override's build? The one place this is decided.

`override_verdict(override)` reads only what the portal stores: the registry digest, the MPO status, the
mirrored Module and ModuleConfig (`override.cluster_module`, written by the read-back) and the sync state,
with the transition times the portal recorded itself (never MPO `updatedAt` as "deployed at"). States:

- `running`: the cluster reports the wanted digest, the MPO is Ready and the Module became Ready since after
  that digest was reported;
- `deploying`: the digest is reported, the Module is not (yet) Ready since it;
- `pending`: the registry shows a newer digest than the cluster reports (Renew);
- `download-failed` (MPO `Download error:`), `deploy-failed` (MPO `Validation error:` / `Deploy error:`, the
  Module failed on the digest, or the ModuleConfig's `Error:`), `blocked` (a gate message of the controller,
  or the Module disabled or in conflict);
- `sync-off` (no cluster configured), `unknown` (no status yet, the cluster not read lately, or a Module the
  portal cannot understand: the reason says what was missing).

Pure: no queries when the queryset selected `cluster_module` (see `with_verdict_inputs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from overrides.cluster.state import SYNC_OFF_MESSAGE
from overrides.models import ClusterModule, DigestObservation, DigestOrigin, ModuleHealth, SyncState

RUNNING, DEPLOYING, PENDING = "running", "deploying", "pending"
DOWNLOAD_FAILED, DEPLOY_FAILED, BLOCKED = "download-failed", "deploy-failed", "blocked"
SYNC_OFF, UNKNOWN = "sync-off", "unknown"
STATES = (RUNNING, DEPLOYING, PENDING, DOWNLOAD_FAILED, DEPLOY_FAILED, BLOCKED, SYNC_OFF, UNKNOWN)
FAILURES = frozenset({DOWNLOAD_FAILED, DEPLOY_FAILED, BLOCKED})

READY_MESSAGES = frozenset({"", "Ready"})
GATE_MESSAGES = frozenset({
    "The module not found", "The module is embedded", "The module disabled",
    "The module does not have an active source", "The source not found",
})
MISSING_SOURCE_RE = re.compile(r'^ModuleSource ".*" not found$')
# The read-back runs every 20 s; a row not seen for this long means the cluster is not being read.
CLUSTER_STALE = timedelta(seconds=90)


@dataclass(frozen=True)
class Verdict:
    """`state` (one of STATES), `summary` (a short phrase for a badge), `reason` (the full story), `since` (when
    the portal first saw this situation; None when unknown). `digest` is the digest it is about; `module` says
    the verdict comes from the Module or ModuleConfig rather than the MPO."""

    state: str
    summary: str
    reason: str
    since: datetime | None = None
    digest: str = ""
    module: bool = False

    @property
    def failed(self) -> bool:
        return self.state in FAILURES


def message_verdict(message: str) -> str | None:
    """The state an MPO `status.message` means on its own (None: not a failure or gate)."""
    message = (message or "").strip()
    if message.startswith("Download error:"):
        return DOWNLOAD_FAILED
    if message.startswith(("Validation error:", "Deploy error:")):
        return DEPLOY_FAILED
    if message in GATE_MESSAGES or MISSING_SOURCE_RE.match(message):
        return BLOCKED
    return None


def cluster_module_of(override) -> ClusterModule | None:
    try:
        return getattr(override, "cluster_module", None)
    except ClusterModule.DoesNotExist:
        return None


def with_verdict_inputs(queryset: QuerySet) -> QuerySet:
    """What the verdict reads, in the same query: the mirrored Module and when the registry showed its digest."""
    first_seen = DigestObservation.objects.filter(
        override=OuterRef("pk"), origin=DigestOrigin.REGISTRY, digest=OuterRef("registry_digest"),
    ).order_by("-observed_at").values("observed_at")[:1]
    return queryset.select_related("cluster_module").annotate(registry_digest_seen_at=Subquery(first_seen))


def _short(text: str, limit: int = 80) -> str:
    """The first line of `text`, cut to `limit` characters (a badge holds a phrase, the reason holds all)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def override_verdict(override, now: datetime | None = None, wanted: str | None = None) -> Verdict:
    """The verdict of one override (see the module docstring).

    `wanted`: the digest a rollout waits for; when the cluster reports it, a newer registry digest does not make
    the verdict `pending` (the question is whether *that* digest runs).
    """
    now = now or timezone.now()
    module = cluster_module_of(override)
    if override.deleted_at is not None:
        return Verdict(UNKNOWN, "deleted", "The override was deleted; the cluster is no longer followed.",
                       override.deleted_at)
    if override.sync_state == SyncState.OFF:
        return Verdict(SYNC_OFF, "cluster sync off", f"{SYNC_OFF_MESSAGE} The portal cannot tell what the cluster "
                       "runs.")
    seen = override.cluster_seen_at
    if seen is None or now - seen > CLUSTER_STALE:
        when = f"since {seen:%Y-%m-%d %H:%M:%S} UTC" if seen else "yet"
        return Verdict(UNKNOWN, "cluster not read", f"The portal has not read this override from the cluster {when}"
                       f" (cluster unreachable, or the override not applied yet). {override.sync_message}".strip(),
                       seen)
    message, digest = override.status_message or "", override.status_image_digest
    message_since = module.message_seen_at if module is not None and module.message == message else None
    by_message = message_verdict(message)
    if by_message is not None:
        label = {DOWNLOAD_FAILED: "download failed", DEPLOY_FAILED: "deploy failed", BLOCKED: "blocked"}[by_message]
        return Verdict(by_message, f"{label}: {_short(message, 60)}", f"The cluster reports: {message}",
                       message_since, digest)
    if message not in READY_MESSAGES:
        return Verdict(UNKNOWN, "unknown message", f"The controller's message is not one the portal knows: {message}",
                       message_since, digest)
    if not digest:
        return Verdict(UNKNOWN, "no status yet", "The cluster has not reported a digest for this override yet.",
                       override.synced_at, digest)
    registry = override.registry_digest
    if registry and registry != digest and not override.registry_error and wanted != digest:
        return Verdict(PENDING, "new image, not deployed", f"The registry has {registry} for {override.image_tag}; "
                       f"the cluster runs {digest}. Renew to deploy it now.",
                       getattr(override, "registry_digest_seen_at", None), registry)
    return _module_verdict(override, module, digest)


def _module_verdict(override, module: ClusterModule | None, digest: str) -> Verdict:
    """The digest is reported and Ready on the MPO: what the Module (and ModuleConfig) make of it."""
    if module is None or module.digest != digest:
        return Verdict(UNKNOWN, "module not read yet", f"The cluster reports {digest}; the portal has not read the "
                       "module's state since.", None, digest, True)
    if module.config_message.startswith("Error:"):
        return Verdict(DEPLOY_FAILED, "settings invalid", f"The ModuleConfig says: {module.config_message}",
                       module.config_message_seen_at, digest, True)
    if module.problems:
        return Verdict(UNKNOWN, "module state unclear", "The portal cannot tell the module's state: "
                       + "; ".join(module.problems) + ".", module.health_seen_at, digest, True)
    phase = module.phase or "?"
    details = _module_details(module)
    if module.health == ModuleHealth.FAILED:
        if module.failed_digest == digest:
            return Verdict(DEPLOY_FAILED, f"module {phase}: {_short(module.failure, 50)}",
                           f"The module failed on {digest} ({phase}). {details}", module.failed_at, digest, True)
        return Verdict(DEPLOYING, f"module {phase} (before this digest)", f"The cluster reports {digest}; the "
                       f"module still shows the failure from before it ({phase}). {details}",
                       module.digest_seen_at, digest, True)
    if module.health in (ModuleHealth.DISABLED, ModuleHealth.CONFLICT):
        return Verdict(BLOCKED, f"module {phase}", f"The module does not run: {phase}. {details}",
                       module.health_seen_at, digest, True)
    if module.health == ModuleHealth.READY and module.ready_digest == digest:
        return Verdict(RUNNING, "running", f"The cluster runs {digest} and the module is Ready on it.",
                       module.ready_at, digest, True)
    stale = " (Ready from before this digest)" if module.health == ModuleHealth.READY else ""
    return Verdict(DEPLOYING, f"deploying ({phase})", f"The cluster reports {digest}; the module is {phase}{stale}, "
                   f"not Ready on it yet. {details}".strip(), module.digest_seen_at, digest, True)


def _module_details(module: ClusterModule) -> str:
    parts = []
    if module.reason:
        parts.append(f"Reason: {module.reason}")
    if module.hooks_state:
        parts.append(f"Hooks: {module.hooks_state}")
    if module.tip:
        parts.append(f"Tip: {module.tip}")
    return ". ".join(parts)
