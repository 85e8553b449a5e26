"""Every Prometheus metric of the portal, defined once here; call sites use the one-line helpers below.

prometheus-client picks its storage when it is first imported: with `PROMETHEUS_MULTIPROC_DIR` set (the
shipped server and worker commands set it), each process writes its samples to files there and `/metrics`
sums the files of all gunicorn and qcluster worker processes; without it each process counts for itself.
Gauges that depend on the database (overrides by sync state and status) are read at scrape time by
`portal.monitoring.OverrideCollector`, not stored here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "mpo_portal"
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_ROLLOUT_SECONDS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered, by route, method and status.",
                        ["route", "method", "status"], namespace=NAMESPACE)
HTTP_LATENCY = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by route and method.",
                         ["route", "method"], namespace=NAMESPACE, buckets=_SECONDS)
REGISTRY_CHECKS = Counter("registry_checks", "Digest checks recorded, by result (first, changed, same, failed, "
                          "stale) and registry host.", ["result", "host"], namespace=NAMESPACE)
CHECK_LATENESS = Histogram("registry_check_lateness_seconds", "From a check's due time to its start.",
                           namespace=NAMESPACE, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0))
DIGEST_CHANGES = Counter("digest_changes", "Digest changes recorded, by origin (registry, cluster).", ["origin"],
                         namespace=NAMESPACE)
REGISTRY_ERRORS = Counter("registry_errors", "Failed registry look-ups, by error kind.", ["kind"],
                          namespace=NAMESPACE)
CLUSTER_APPLIES = Counter("cluster_applies", "Applies to the cluster, by object (override, source) and result "
                          "(synced, stale, pending, error: the last two are failures).", ["model", "result"],
                          namespace=NAMESPACE)
READ_BACK_DURATION = Histogram("cluster_read_back_duration_seconds", "One read-back pass over the cluster.",
                               namespace=NAMESPACE, buckets=_SECONDS)
ROLLOUT_WAITS = Gauge("rollout_waits_in_flight", "Rollout waits held open now.", namespace=NAMESPACE,
                      multiprocess_mode="livesum")
DIGEST_TO_CLUSTER = Histogram("digest_rollout_seconds", "From the registry showing a digest (the portal's first "
                              "observation) to the cluster reporting it in status.imageDigest.",
                              namespace=NAMESPACE, buckets=_ROLLOUT_SECONDS)


def check_recorded(result: str, host: str, lateness: float | None = None) -> None:
    """One digest check written back (`result` is `record_check`'s word); lateness in seconds when scheduled."""
    REGISTRY_CHECKS.labels(result, host or "-").inc()
    if lateness is not None:
        CHECK_LATENESS.observe(max(lateness, 0.0))


def applied(outcome):
    """An apply that talked to the cluster ended (an `overrides.cluster.sync.ApplyOutcome`); returns it."""
    CLUSTER_APPLIES.labels(outcome.model, outcome.result).inc()
    return outcome


def cluster_reports_digest(override_pk: int, digest: str, reported_at) -> None:
    """The cluster now reports `digest` for an override: a change, and the time since the registry first showed it
    to the portal (not observed when the portal never saw that digest in the registry)."""
    from overrides.models import DigestObservation, DigestOrigin

    DIGEST_CHANGES.labels("cluster").inc()
    seen = (DigestObservation.objects.filter(override_id=override_pk, digest=digest, origin=DigestOrigin.REGISTRY)
            .order_by("observed_at").values_list("observed_at", flat=True).first())
    if seen is not None:
        DIGEST_TO_CLUSTER.observe(max((reported_at - seen).total_seconds(), 0.0))
