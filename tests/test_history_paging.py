"""The long history lists page without OFFSET or a full COUNT: the API's digest history by cursor, the admin's
digest list with a bounded count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from overrides.models import DigestObservation
from tests.test_api_support import *  # noqa: F403 - the api fixture

pytestmark = pytest.mark.django_db
DIGESTS = "/api/v1/overrides/echo/digests/"


@pytest.fixture
def history(make_override):
    """11 digests of `echo`, three of them at the very same time (ties are broken by id)."""
    override = make_override(name="echo")
    now = timezone.now()
    times = [now + timedelta(seconds=i) for i in range(8)] + [now + timedelta(seconds=3)] * 3
    rows = DigestObservation.objects.bulk_create([
        DigestObservation(override=override, digest=f"sha256:{i:064d}", image_ref=override.image_ref,
                          origin="registry", observed_at=t) for i, t in enumerate(times)])
    return sorted(rows, key=lambda r: (r.observed_at, r.pk), reverse=True)


def walk(api, url: str, params: dict, follow: str) -> list[list[str]]:
    pages, response = [], api.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        data = response.json()
        assert "count" not in data
        pages.append([d["digest"] for d in data["results"]])
        if not data[follow]:
            return pages
        response = api.get(data[follow])


def test_the_digest_history_pages_by_cursor_both_ways(api, history):
    newest_first = [r.digest for r in history]
    pages = walk(api, DIGESTS, {"limit": 4}, "next")
    assert [len(p) for p in pages] == [4, 4, 3] and sum(pages, []) == newest_first
    # Back from the last page by `previous`: the same pages, in reverse.
    last = api.get(DIGESTS, {"limit": 4}).json()
    while last["next"]:
        last = api.get(last["next"]).json()
    back = walk(api, last["previous"], {}, "previous")
    assert back == pages[:-1][::-1]
    # Oldest first walks the same cursors upwards.
    up = walk(api, DIGESTS, {"limit": 4, "ordering": "observedAt"}, "next")
    assert sum(up, []) == newest_first[::-1] and [len(p) for p in up] == [4, 4, 3]


def test_a_deep_page_is_one_range_query_without_count_or_offset(api, history):
    page = api.get(DIGESTS, {"limit": 2}).json()
    for _ in range(3):
        page = api.get(page["next"]).json()
    with CaptureQueriesContext(connection) as queries:
        assert api.get(page["next"]).status_code == 200
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries if "DIGESTOBSERVATION" in q["sql"].upper())
    assert "COUNT(" not in sql and "OFFSET" not in sql


@pytest.mark.parametrize(("params", "field"), [({"offset": "100"}, "offset"), ({"before": "garbage"}, "before"),
                                               ({"limit": "0"}, "limit"), ({"limit": "5000"}, "limit")])
def test_bad_paging_parameters_are_400_naming_the_field(api, history, params, field):
    response = api.get(DIGESTS, params)
    assert response.status_code == 400 and list(response.json()) == [field]


def test_the_admin_digest_list_counts_at_most_a_bounded_number_of_rows(client, admin_user, history, settings):
    from overrides.admin import DigestObservationAdmin

    client.force_login(admin_user)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/overrides/digestobservation/", {"p": "2"})
    assert response.status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts  # bounded, never the whole table
    assert DigestObservationAdmin.show_full_result_count is False
