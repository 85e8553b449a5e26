"""The status badge, the digest timeline pairing, and how times and durations read."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from overrides.presentation import (
    digest_timeline,
    format_duration,
    format_utc,
    override_notices,
    override_status,
    short_digest,
)

A, B, C = ("sha256:" + ch * 64 for ch in "abc")
T0 = datetime(2026, 11, 3, 12, 0, 0, tzinfo=UTC)


def override(**fields):
    values = dict(deleted_at=None, registry_error="", sync_state="synced", sync_message="", registry_checked_at=T0,
                  registry_digest=A, status_image_digest=A, status_message="Ready", cluster_seen_at=None)
    values.update(fields)
    return SimpleNamespace(**values)


@pytest.mark.parametrize("fields, kind, text", [
    ({"sync_state": "off"}, "sync-off", "cluster sync off"),
    ({"deleted_at": T0}, "deleted", "deleted"),
    ({}, "unknown", "cluster not read"),  # never read back: the portal cannot tell
])
def test_status_badge_is_the_verdict(fields, kind, text):
    badge = override_status(override(**fields))
    assert (badge.kind, badge.text) == (kind, text) and badge.title


@pytest.mark.parametrize("fields, notices", [
    ({}, []),
    ({"registry_error": "connection refused"}, [("error", "registry error: connection refused")]),
    ({"sync_state": "error", "sync_message": "403 Forbidden"}, [("error", "not synced: 403 Forbidden")]),
    ({"sync_state": "pending", "sync_message": ""}, [("pending", "not synced: waiting to be applied")]),
])
def test_what_the_portal_cannot_do_is_shown_beside_the_verdict(fields, notices):
    assert [(n.kind, n.text) for n in override_notices(override(**fields))] == notices


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.4, "0s"), (12, "12s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (7505, "2h5m5s"), (-12, "-12s"),
    (90000, "25h"),
])
def test_durations_read_like_a_scan_interval(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text


def test_times_are_utc_and_say_so():
    from zoneinfo import ZoneInfo

    moscow = datetime(2026, 11, 3, 15, 0, 5, tzinfo=ZoneInfo("Europe/Moscow"))
    assert format_utc(moscow) == "2026-11-03 12:00:05 UTC"
    assert format_utc(None) == ""
    assert short_digest(A) == "a" * 12 and short_digest("") == ""


def obs(pk, digest, origin, seconds):
    return SimpleNamespace(id=pk, digest=digest, origin=origin, image_ref="r/m:t",
                           observed_at=T0 + timedelta(seconds=seconds), renewed_at=None)


def test_timeline_pairs_registry_and_cluster_by_digest():
    registry = [obs(1, A, "registry", 0), obs(3, B, "registry", 100), obs(5, A, "registry", 200)]
    cluster = [obs(2, A, "cluster", 12), obs(4, B, "cluster", 97), obs(6, C, "cluster", 150),
               obs(7, A, "cluster", 230)]
    entries = digest_timeline(registry, cluster)
    assert [(e.digest, e.delay_text) for e in entries] == [
        (A, "30s"),  # A again: paired with the cluster's second report of A, not the first
        (C, ""),  # the cluster ran a digest the portal never saw
        (B, "cluster first, 3s earlier"),
        (A, "12s"),
    ]
    assert entries[1].registry_at is None and entries[1].cluster_at == T0 + timedelta(seconds=150)


def test_timeline_entry_waiting_for_the_cluster():
    [entry] = digest_timeline([obs(1, A, "registry", 0)], [])
    assert entry.cluster_at is None and entry.delay is None and entry.delay_text == ""


def test_timeline_leaves_neighbouring_pages_their_cluster_reports():
    older = obs(1, A, "registry", 0)
    page = [obs(3, B, "registry", 100)]
    newer = obs(9, C, "registry", 300)
    cluster = [obs(2, A, "cluster", 20), obs(4, B, "cluster", 110), obs(8, C, "cluster", 290)]
    entries = digest_timeline(page, cluster, older, newer)
    assert [(e.digest, e.delay_text) for e in entries] == [(B, "10s")]


def _registry_failure(source, module: str = "m", tag: str = "main") -> str:
    from registry.client import resolve_digest

    lookup = resolve_digest(source, module, tag, timeout=(1.0, 1.0))
    assert lookup.error is not None
    return lookup.error.message


def test_registry_failures_read_as_a_few_words_with_the_full_text_kept(registry, registry_basic, hanging_server):
    from overrides.presentation import short_status
    from tests.registries.processes import free_port

    module = registry.unique()
    registry.push(module, "v1")
    anonymous = registry_basic.source(docker_cfg="")
    closed = registry.source(repo=f"127.0.0.1:{free_port()}/deckhouse/modules")
    cases = {
        "tag not found": _registry_failure(registry.source(), module, "nope"),
        "repository not found": _registry_failure(registry.source(), registry.unique("ghost")),
        "auth refused": _registry_failure(anonymous),
        "registry unreachable": _registry_failure(closed),
        "registry not answering": _registry_failure(hanging_server.source()),
    }
    for phrase, message in cases.items():
        [badge] = override_notices(override(registry_error=message))  # beside the verdict
        assert badge.text == f"registry error: {message}"
        assert short_status(badge) == phrase, message


def test_other_long_texts_are_cut_short():
    from django.utils import timezone

    from overrides.presentation import SHORT_STATUS_MAX, short_status

    badge = override_status(override(status_message="Download error: " + "x" * 300, cluster_seen_at=timezone.now()))
    short = short_status(badge)
    assert badge.kind == "download-failed" and "x" * 300 in badge.title
    assert len(short) <= SHORT_STATUS_MAX and short.endswith("…") and badge.text.startswith(short[:-1])
    assert short_status(override_status(override(sync_state="off"))) == "cluster sync off"
