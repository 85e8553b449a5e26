"""Server time of the digest history's long lists at 200,000 rows: the Django admin's digest list and the API's
digest history at a deep position, each beside its baseline (the previous paging) in the same run.

    .venv/bin/python bench/history_pages.py [--rows 200000] [--requests 20]

Builds a fresh SQLite file database (migrations, one override with `--rows` DigestObservations), then times
`--requests` GETs through Django's test Client in this process (the whole stack, no network) after a warm-up:

- admin list, first page: Django's Paginator (a full COUNT of the table) and the date drill-down (a DISTINCT over
  every row), the baseline, vs `BoundedCountPaginator` without the drill-down;
- API digest history at a deep position (`--rows` minus 1000): `?limit=50&offset=N` with the previous
  LimitOffsetPagination (OFFSET scan + COUNT: the baseline) vs the cursor of the row at that position.

Prints p50 in milliseconds and the ratio baseline / now. The machine is shared: read the ratios, not the
absolute figures.
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
sys.path.insert(0, os.path.join(ROOT, "bench"))

from ui import setup_django  # noqa: E402 - the same fresh database as the UI bench

WARMUP = 3


def seed(rows: int) -> str:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from overrides.models import DigestObservation, ModulePullOverride, ModuleSource

    now = timezone.now()
    with transaction.atomic():
        source = ModuleSource.objects.create(name="bench", repo="registry.example.com/deckhouse/modules",
                                             sync_state="off")
        override = ModulePullOverride.objects.create(name="echo", source=source, image_tag="main", sync_state="off")
        t0 = now - timedelta(minutes=rows)
        adapt = connection.ops.adapt_datetimefield_value
        values = [(override.pk, "sha256:" + f"{i:064x}", "", "registry.example.com/deckhouse/modules/echo:main",
                   "registry" if i % 2 == 0 else "cluster", adapt(t0 + timedelta(seconds=30 * i)))
                  for i in range(rows)]
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {DigestObservation._meta.db_table} (override_id, digest, previous_digest, image_ref, "
                "origin, observed_at) VALUES (%s, %s, %s, %s, %s, %s)", values)
        get_user_model().objects.create_superuser("bench", password="bench-pass-123", email="")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return override.name


def p50(client, url: str, count: int) -> float:
    for _ in range(WARMUP):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert client.get(url).status_code == 200, url
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mpo-bench-history-") as workdir:
        setup_django(workdir)
        started = time.perf_counter()
        name = seed(args.rows)
        print(f"seeded {args.rows} digest rows in {time.perf_counter() - started:.1f}s")
        from django.contrib.auth import get_user_model
        from django.core.paginator import Paginator
        from django.test import Client

        from overrides.admin import DigestObservationAdmin
        from overrides.api.common import ApiPagination
        from overrides.api.history import DigestHistoryView
        from overrides.models import DigestObservation
        from overrides.views.paging import encode_cursor

        client = Client()
        client.force_login(get_user_model().objects.get(username="bench"))
        depth = max(0, args.rows - 1000)
        row = DigestObservation.objects.order_by("-observed_at", "-id")[depth]
        cursor = encode_cursor(row.observed_at, row.pk)
        admin_url = "/admin/overrides/digestobservation/"
        api_url = f"/api/v1/overrides/{name}/digests/?limit=50"

        results = []
        bounded = DigestObservationAdmin.paginator
        DigestObservationAdmin.paginator, DigestObservationAdmin.date_hierarchy = Paginator, "observed_at"
        baseline = p50(client, admin_url, args.requests)
        DigestObservationAdmin.paginator, DigestObservationAdmin.date_hierarchy = bounded, None
        results.append(("admin digest list, first page", baseline, p50(client, admin_url, args.requests)))

        keyset = DigestHistoryView.pagination_class
        DigestHistoryView.pagination_class = ApiPagination
        baseline = p50(client, f"{api_url}&offset={depth}", args.requests)
        DigestHistoryView.pagination_class = keyset
        results.append((f"API digest history at row {depth}", baseline,
                        p50(client, f"{api_url}&before={cursor}", args.requests)))

        print(f"{'list':40} {'baseline p50 ms':>16} {'now p50 ms':>11} {'ratio':>7}")
        for label, before, now in results:
            print(f"{label:40} {before:16.1f} {now:11.1f} {before / now:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
