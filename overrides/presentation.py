"""How the portal tells a person where an override stands: the one status badge, short digests, UTC times,
durations, and the digest timeline (registry vs cluster) of the override page.

Pure functions over model instances and plain values: no queries, so list pages stay at a constant number
of SQL queries however many rows they show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from overrides.models import SyncState
from overrides.verdict import override_verdict


@dataclass(frozen=True)
class StatusBadge:
    """`kind` picks the colour (CSS class `badge-<kind>`), `text` says it in words, `title` the whole story."""

    kind: str
    text: str
    title: str = ""


def override_status(override) -> StatusBadge:
    """Where an override stands: its rollout verdict (`overrides.verdict`), the one badge of every page."""
    if override.deleted_at is not None:
        return StatusBadge("deleted", "deleted", "The override was deleted; its history is kept.")
    verdict = override_verdict(override)
    return StatusBadge(verdict.state, verdict.summary, verdict.reason)


def override_notices(override) -> list[StatusBadge]:
    """What the portal itself cannot do for the override, beside the verdict: read the registry, apply the spec."""
    notices = []
    if override.deleted_at is None and override.registry_error:
        notices.append(StatusBadge("error", f"registry error: {override.registry_error}"))
    if override.deleted_at is None and override.sync_state in (SyncState.ERROR, SyncState.PENDING):
        text = override.sync_message or ("the cluster refused the change" if override.sync_state == SyncState.ERROR
                                         else "waiting to be applied")
        notices.append(StatusBadge("error" if override.sync_state == SyncState.ERROR else "pending",
                                   f"not synced: {text}"))
    return notices


# A registry failure in a few words, for the dashboard's status cell (the full text is its tooltip and is on the
# override page): the first phrase whose words the failure's message contains. The messages are the registry
# client's own (registry/client.py, registry/failures.py, registry/transport.py), so the words are stable.
_REGISTRY_PHRASES = (
    ("has no tag", "tag not found"),
    ("does not exist on", "repository not found"),
    ("cannot exist", "invalid image reference"),
    ("rate limiting", "rate limited"),
    ("requires credentials", "auth refused"),
    ("refused access", "auth refused"),
    ("denied access", "auth refused"),
    ("authentication to", "auth refused"),
    ("dockerCfg", "credentials unusable"),
    ("TLS", "TLS failed"),
    ("cannot connect", "registry unreachable"),
    ("did not accept a connection", "registry unreachable"),
    ("did not answer", "registry not answering"),
)
SHORT_STATUS_MAX = 40


def short_status(badge: StatusBadge) -> str:
    """The badge's text in a few words ("tag not found", "auth refused", "registry unreachable"), so a long
    registry error does not grow the dashboard row; other long texts are cut at `SHORT_STATUS_MAX`."""
    if badge.text.startswith("registry error: "):
        return next((phrase for words, phrase in _REGISTRY_PHRASES if words in badge.text), "registry error")
    if len(badge.text) <= SHORT_STATUS_MAX:
        return badge.text
    return badge.text[: SHORT_STATUS_MAX - 1].rstrip() + "…"


def short_digest(digest: str | None, length: int = 12) -> str:
    """`sha256:0123456789abcdef…` → `0123456789ab` (the algorithm is always sha256 in practice)."""
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:length]


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc(value: datetime | None) -> str:
    """`2026-11-03 12:00:05 UTC`: every time a person reads is UTC and says so."""
    value = as_utc(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def format_duration(delta: timedelta | None) -> str:
    """A duration in the CR's own form (`12s`, `1m30s`, `2h5m`); sub-second durations round to `0s`."""
    if delta is None:
        return ""
    seconds = int(abs(delta.total_seconds()) + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"
    return f"-{text}" if delta.total_seconds() < 0 and text != "0s" else text


@dataclass(frozen=True)
class TimelineEntry:
    """One digest the override went through: when the portal's registry check first saw it, when the cluster
    reported running it, and how long the cluster took (negative: the controller got there first)."""

    digest: str
    image_ref: str
    registry_at: datetime | None
    cluster_at: datetime | None
    renewed_at: datetime | None = None  # when the portal renewed the override for this digest (auto-renew)
    module_at: datetime | None = None  # when the Module became Ready on this digest, or failed on it
    module_outcome: str = ""  # "ready" or "failed"
    module_reason: str = ""

    @property
    def module_delay_text(self) -> str:
        """From the cluster's report to the module's outcome."""
        if self.cluster_at is None or self.module_at is None:
            return ""
        return format_duration(self.module_at - self.cluster_at)

    @property
    def sort_time(self) -> datetime:
        return self.registry_at or self.cluster_at  # type: ignore[return-value]

    @property
    def delay(self) -> timedelta | None:
        if self.registry_at is None or self.cluster_at is None:
            return None
        return self.cluster_at - self.registry_at

    @property
    def delay_text(self) -> str:
        delay = self.delay
        if delay is None:
            return ""
        if delay < timedelta(0):
            return f"cluster first, {format_duration(-delay)} earlier"
        return format_duration(delay)


def digest_timeline(registry_rows, cluster_rows, older=None, newer=None) -> list[TimelineEntry]:
    """Pair registry- and cluster-origin DigestObservations by digest, newest first.

    `registry_rows` is one page of registry observations, `cluster_rows` the cluster observations in the page's
    window (after `older`, before `newer`: the registry observations just outside the page, None at an end).
    A registry observation is paired with the earliest cluster observation of the same digest after the
    registry's previous observation (the controller may report a digest shortly before the portal's own check
    sees it) and before the registry shows that digest again (A, B, A). Cluster observations left unpaired are
    entries of their own (a digest the portal's checks never saw: pushed and replaced between two checks),
    unless they belong to a neighbouring page: before this page's oldest registry observation, or an early
    report of `newer`'s digest, which that page pairs.
    """
    registry = sorted(registry_rows, key=lambda o: (o.observed_at, o.id))
    cluster = sorted(cluster_rows, key=lambda o: (o.observed_at, o.id))
    older_time = older.observed_at if older is not None else None
    used: set[int] = set()
    entries: list[TimelineEntry] = []
    for i, obs in enumerate(registry):
        low = registry[i - 1].observed_at if i > 0 else older_time
        again = next((r.observed_at for r in registry[i + 1:] if r.digest == obs.digest), None)
        match = next(
            (c for c in cluster
             if c.id not in used and c.digest == obs.digest
             and (low is None or c.observed_at > low) and (again is None or c.observed_at < again)),
            None,
        )
        if match is not None:
            used.add(match.id)
        entries.append(TimelineEntry(obs.digest, obs.image_ref, obs.observed_at,
                                     match.observed_at if match else None, obs.renewed_at))
    oldest = registry[0].observed_at if registry and older is not None else None
    newest = registry[-1].observed_at if registry else None
    for c in cluster:
        if c.id in used or (oldest is not None and c.observed_at < oldest):
            continue
        if newer is not None and c.digest == newer.digest and (newest is None or c.observed_at > newest):
            continue
        entries.append(TimelineEntry(c.digest, c.image_ref, None, c.observed_at))
    entries.sort(key=lambda e: e.sort_time, reverse=True)
    return entries


def with_module_outcomes(entries: list[TimelineEntry], module_rows) -> list[TimelineEntry]:
    """Each entry the cluster reported gets the module's first outcome on its digest after that report."""
    rows = sorted(module_rows, key=lambda o: (o.observed_at, o.id))
    used: set[int] = set()
    out = []
    for entry in entries:
        match = None
        if entry.cluster_at is not None:
            match = next((r for r in rows if r.id not in used and r.digest == entry.digest
                          and r.observed_at >= entry.cluster_at), None)
        if match is not None:
            used.add(match.id)
            entry = replace(entry, module_at=match.observed_at, module_outcome=match.outcome,
                            module_reason=match.reason)
        out.append(entry)
    return out
