"""Pages stay at a constant number of SQL queries however many rows there are (2000 overrides; an override with
100,000 digest observations), and long histories are paged by keyset over an index, without a COUNT."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from overrides.models import DigestObservation, ModulePullOverride, ModuleSource, ObjectChange

pytestmark = pytest.mark.django_db

HISTORY_ROWS = 100_000


def bulk_overrides(source: ModuleSource, count: int, start: int = 0) -> None:
    """Rows straight into the table: the services are not what is measured here."""
    now = timezone.now()
    ModulePullOverride.objects.bulk_create([
        ModulePullOverride(name=f"mod-{i:05d}", source=source, image_tag="main", sync_state="off",
                           registry_digest="sha256:" + f"{i:064x}", registry_checked_at=now,
                           next_check_at=now + timedelta(seconds=15))
        for i in range(start, start + count)
    ], batch_size=500)


def bulk_history(override: ModulePullOverride, count: int) -> None:
    """`count` observations, alternating registry and cluster reports of a new digest every minute (the cluster
    7 s after the registry). Inserted with executemany: ORM bulk_create of 100k rows is several times slower."""
    t0 = timezone.now() - timedelta(minutes=count)
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (override.pk, "sha256:" + f"{i // 2:064x}", "", override.image_ref, "registry" if i % 2 == 0 else "cluster",
         adapt(t0 + timedelta(seconds=60 * (i // 2) + 7 * (i % 2))))
        for i in range(count)
    ]
    table = DigestObservation._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (override_id, digest, previous_digest, image_ref, origin, observed_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)", rows)


def queries_for(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("url", ["/", "/dashboard/rows/", "/?per_page=200", "/?page=2&source=test",
                                 "/?search=mod-00&sync_state=off"])
def test_dashboard_queries_do_not_grow_with_overrides(admin_client, make_source, url):
    source = make_source()
    bulk_overrides(source, 150)
    small = queries_for(admin_client, url)
    bulk_overrides(source, 1850, start=150)
    assert ModulePullOverride.objects.count() == 2000
    large = queries_for(admin_client, url)
    assert len(large) == len(small) <= 8


def test_dashboard_pages_through_2000_overrides(admin_client, make_source, django_assert_max_num_queries):
    source = make_source()
    bulk_overrides(source, 2000)
    with django_assert_max_num_queries(8):
        page = admin_client.get("/?page=20").content.decode()
    assert "2000 overrides" in page and 'data-key="mod-01999"' in page and 'data-key="mod-00000"' not in page
    assert "Page 20 of 20" in page


def test_override_page_with_100k_history_rows(admin_client, make_override):
    override = make_override()
    bulk_history(override, 10)
    small = queries_for(admin_client, "/overrides/echo/")
    bulk_history(override, HISTORY_ROWS - 10)
    assert DigestObservation.objects.filter(override=override).count() == HISTORY_ROWS

    large = queries_for(admin_client, "/overrides/echo/")
    assert len(large) == len(small) <= 12
    history_sql = [q for q in large if "overrides_digestobservation" in q]
    assert history_sql and not any("COUNT(" in q.upper() for q in history_sql)

    page = admin_client.get("/overrides/echo/").content.decode()
    assert page.count('<code class="digest"') == 25  # one page of the timeline, registry and cluster paired
    assert page.count('data-label="Took">7s<') == 25
    # Page deep into the history: the same number of queries, again no COUNT.
    cursor = page.split("before=")[1].split("#")[0].split('"')[0]
    for _ in range(3):
        deeper_url = f"/overrides/echo/?before={cursor}"
        deeper = queries_for(admin_client, deeper_url)
        assert len(deeper) <= len(large) + 1
        body = admin_client.get(deeper_url).content.decode()
        assert body.count('<code class="digest"') == 25 and "Newer" in body
        cursor = body.split("before=")[1].split("#")[0].split('"')[0]
    live = queries_for(admin_client, f"/overrides/echo/live/?before={cursor}")
    assert len(live) <= 8


def test_timeline_queries_use_the_history_index(admin_client, make_override):
    if connection.vendor != "sqlite":
        pytest.skip("the plan check reads SQLite's EXPLAIN QUERY PLAN")
    override = make_override()
    bulk_history(override, 2000)
    sql = [q for q in queries_for(admin_client, "/overrides/echo/?before=1.1") + queries_for(admin_client,
           "/overrides/echo/") if "FROM \"overrides_digestobservation\"" in q]
    assert sql
    with connection.cursor() as cursor:
        for statement in sql:
            plan = " ".join(str(row[-1]) for row in cursor.execute("EXPLAIN QUERY PLAN " + statement).fetchall())
            assert "digest_override_time" in plan, (statement, plan)
            assert "SCAN overrides_digestobservation" not in plan  # SEARCH (a range), never a full scan


def test_audit_page_queries_do_not_grow(admin_client, make_override):
    override = make_override()
    ObjectChange.objects.bulk_create([
        ObjectChange(user_name="ci", context="api", action="update", object_type="modulepulloverride",
                     object_id=override.pk, object_repr="echo", before={"imageTag": f"t{i}"},
                     after={"imageTag": f"t{i + 1}"})
        for i in range(20)
    ])
    small = queries_for(admin_client, "/audit/?objectType=override")
    ObjectChange.objects.bulk_create([
        ObjectChange(user_name="ci", context="api", action="update", object_type="modulepulloverride",
                     object_id=override.pk, object_repr="echo", before={"imageTag": f"t{i}"},
                     after={"imageTag": f"t{i + 1}"})
        for i in range(5000)
    ], batch_size=1000)
    large = queries_for(admin_client, "/audit/?objectType=override")
    assert len(large) == len(small)
    assert not any("COUNT(" in q.upper() for q in large if "overrides_objectchange" in q)
