"""Auto-renew: pull a new build now instead of at the controller's next scan.

Deckhouse reads an override's tag every `scanInterval`; an annotation change makes it read at once. When a check
records a new registry digest (`checks.record_check`, from a poll or a push notification) it marks the override
`auto_renew_at = now`. The dispatcher calls `renew_due()` every tick; for each marked row it decides once, here:

- renew (through `services.override_renew`, the same service, annotation and audit row as a user's renew, with
  context scheduler and the digest in the message) when auto-renew is on (the setting and the override's switch),
  the cluster is reachable and holds the current spec (`synced`, seen by the read-back lately), and does not
  report the digest yet, and the override was not renewed for this digest before;
- defer to `auto_renewed_at + PORTAL_AUTO_RENEW_FLOOR` when the last auto-renew was more recent than the floor, so
  a tag pushed in a loop cannot hammer the controller;
- else drop the mark: sync off, the cluster unreachable or refusing, an apply still pending (it makes the
  controller read the tag anyway), or the cluster already runs it. Nothing is queued to replay later.

Each mark is taken by a compare-and-swap on `auto_renew_at`, so two dispatchers never renew one digest twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from overrides import services
from overrides.audit import Actor
from overrides.cluster.state import cluster_enabled
from overrides.models import ChangeContext, DigestObservation, DigestOrigin, ModulePullOverride, SyncState

logger = logging.getLogger("overrides.polling.auto_renew")

# The read-back sees every CR every 20 s: not seen for this long means the cluster is not answering.
CLUSTER_SILENT_AFTER = timedelta(seconds=60)

_FIELDS = ("pk", "auto_renew_at", "auto_renew", "registry_digest", "status_image_digest", "auto_renewed_digest",
           "auto_renewed_at", "sync_state", "cluster_seen_at")


def floor() -> timedelta:
    return timedelta(seconds=max(float(settings.PORTAL_AUTO_RENEW_FLOOR), 0.0))


def decide(row: dict, now: datetime) -> tuple[str, datetime | None]:
    """What to do with a marked row: ("renew", None), ("defer", until) or ("drop", None)."""
    digest = row["registry_digest"]
    if not (settings.PORTAL_AUTO_RENEW and row["auto_renew"] and cluster_enabled()):
        return "drop", None
    if not digest or digest == row["status_image_digest"] or digest == row["auto_renewed_digest"]:
        return "drop", None
    seen = row["cluster_seen_at"]
    if row["sync_state"] != SyncState.SYNCED or seen is None or now - seen > CLUSTER_SILENT_AFTER:
        return "drop", None
    last = row["auto_renewed_at"]
    if last is not None and now < last + floor():
        return "defer", last + floor()
    return "renew", None


def renew_due(now: datetime | None = None, limit: int = 100) -> int:
    """Decide every override marked for an auto-renew whose time has come; returns how many were renewed."""
    now = now or timezone.now()
    renewed = 0
    marked = ModulePullOverride.objects.filter(auto_renew_at__lte=now).order_by("auto_renew_at")
    for row in marked.values(*_FIELDS)[:limit]:
        action, until = decide(row, now)
        mine = ModulePullOverride.objects.filter(pk=row["pk"], auto_renew_at=row["auto_renew_at"])
        if action == "defer":
            mine.update(auto_renew_at=until)
        elif action == "drop":
            mine.update(auto_renew_at=None)
        elif _renew(mine, row, now):
            renewed += 1
    return renewed


def _renew(mine, row: dict, now: datetime) -> bool:
    digest = row["registry_digest"]
    with transaction.atomic():
        if not mine.filter(registry_digest=digest).update(
                auto_renew_at=None, auto_renewed_digest=digest, auto_renewed_at=now):
            return False  # another dispatcher took it, or a newer digest re-marked the row meanwhile
        override = ModulePullOverride.objects.get(pk=row["pk"])
        services.override_renew(
            actor=Actor.system(ChangeContext.SCHEDULER), override=override, check_registry=False,
            message=f"Auto-renew: the registry shows {digest}; the cluster runs {row['status_image_digest'] or '-'}.")
        latest = (DigestObservation.objects.filter(override_id=row["pk"], origin=DigestOrigin.REGISTRY, digest=digest)
                  .order_by("-observed_at", "-id").values_list("pk", flat=True).first())
        if latest is not None:
            DigestObservation.objects.filter(pk=latest).update(renewed_at=now)
    logger.info("override %s: auto-renewed for %s", override.name, digest)
    return True
