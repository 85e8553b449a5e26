"""Server time of the web UI's heaviest pages: the dashboard with 2000 overrides and an override page whose digest
history has 100,000 rows.

    .venv/bin/python bench/ui.py [--requests 200] [--overrides 2000] [--history 100000]

Builds a fresh SQLite file database in a temporary directory (migrations, one source, `--overrides` overrides with
registry digests, one override with `--history` DigestObservations alternating registry and cluster reports, and
10,000 audit records), then times `--requests` GETs of each page through Django's test Client in this process
(the whole Django stack: middleware, session, auth, views, templates; no network), after a short warm-up. Prints
p50 / p95 / max in milliseconds and the SQL queries per request. The goal is p95 <= 150 ms for the first two.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_MS = 150.0
WARMUP = 10


def setup_django(workdir: str) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": workdir,
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3", "PORTAL_CLUSTER": "off", "PORTAL_DEBUG": "0",
        "PORTAL_ALLOWED_HOSTS": "testserver,localhost", "PORTAL_LOG_LEVEL": "WARNING",
    })
    os.environ.pop("KUBECONFIG", None)
    from pathlib import Path

    from portal.devkeys import ensure_dev_keys

    ensure_dev_keys(Path(workdir))  # the settings only read keys
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(overrides: int, history: int) -> str:
    """The data set; returns the name of the override with the long history."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from overrides.models import DigestObservation, ModulePullOverride, ModuleSource, ObjectChange

    now = timezone.now()
    with transaction.atomic():
        source = ModuleSource.objects.create(name="bench", repo="registry.example.com/deckhouse/modules",
                                             sync_state="off")
        ModulePullOverride.objects.bulk_create([
            ModulePullOverride(
                name=f"mod-{i:05d}", source=source, image_tag=f"pr-{i}", sync_state="off",
                registry_digest="sha256:" + f"{i:064x}", registry_checked_at=now,
                status_image_digest="sha256:" + f"{i - i % 3:064x}", status_message="Ready",
                registry_error="" if i % 50 else "connection refused", next_check_at=now + timedelta(seconds=15))
            for i in range(overrides)
        ], batch_size=500)
        target = ModulePullOverride.objects.order_by("name").first()
        t0 = now - timedelta(minutes=history)
        adapt = connection.ops.adapt_datetimefield_value
        rows = [(target.pk, "sha256:" + f"{i // 2:064x}", "", "registry.example.com/deckhouse/modules/x:main",
                 "registry" if i % 2 == 0 else "cluster", adapt(t0 + timedelta(seconds=60 * (i // 2) + 7 * (i % 2))))
                for i in range(history)]
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {DigestObservation._meta.db_table} (override_id, digest, previous_digest, image_ref, "
                "origin, observed_at) VALUES (%s, %s, %s, %s, %s, %s)", rows)
        ObjectChange.objects.bulk_create([
            ObjectChange(user_name="ci", context="api", action="update", object_type="modulepulloverride",
                         object_id=target.pk, object_repr=target.name, before={"imageTag": f"t{i}"},
                         after={"imageTag": f"t{i + 1}"})
            for i in range(10_000)
        ], batch_size=1000)
        get_user_model().objects.create_superuser("bench", password="bench-pass-123", email="")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return target.name


def measure(client, url: str, count: int) -> tuple[list[float], int]:
    """Milliseconds per request for `count` GETs of `url` (after a warm-up) and the SQL queries of one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        assert client.get(url).status_code == 200, url
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    queries = len(captured.captured_queries)  # now: the next request clears the connection's query log
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times, queries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--overrides", type=int, default=2000)
    parser.add_argument("--history", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mpo-bench-ui-") as workdir:
        setup_django(workdir)
        started = time.perf_counter()
        name = seed(args.overrides, args.history)
        print(f"seeded {args.overrides} overrides, {args.history} history rows, 10000 audit records "
              f"in {time.perf_counter() - started:.1f}s")
        from django.contrib.auth import get_user_model
        from django.test import Client

        from overrides.models import DigestObservation, DigestOrigin

        client = Client()
        client.force_login(get_user_model().objects.get(username="bench"))  # the login throttle needs a request
        registry_rows = DigestObservation.objects.filter(override__name=name, origin=DigestOrigin.REGISTRY)
        deep = registry_rows.order_by("observed_at", "id")[len(registry_rows) // 2 if args.history else 0]
        from overrides.views.paging import encode_cursor

        pages = [
            (f"dashboard, {args.overrides} overrides (100 per page)", "/", True),
            (f"override page, {args.history} history rows", f"/overrides/{name}/", True),
            ("dashboard rows fragment (the 5 s refresh)", "/dashboard/rows/", False),
            ("dashboard, 200 per page", "/?per_page=200", False),
            ("override page, timeline page in the middle", f"/overrides/{name}/?before="
             f"{encode_cursor(deep.observed_at, deep.pk)}", False),
            ("override live fragment", f"/overrides/{name}/live/", False),
            ("audit, 10000 records, filtered by object", "/audit/?objectType=override", False),
        ]
        failed = False
        print(f"{'page':48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
        for label, url, gated in pages:
            times, queries = measure(client, url, args.requests)
            p50, p95 = statistics.median(times), percentile(times, 0.95)
            verdict = ""
            if gated:
                verdict = "  ok" if p95 <= GOAL_MS else f"  over the {GOAL_MS:.0f} ms goal"
                failed = failed or p95 > GOAL_MS
            print(f"{label:48} {p50:8.1f} {p95:8.1f} {max(times):8.1f} {queries:8d}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
