"""The shipped web server (gunicorn + uvicorn workers on portal.asgi): many rollout waits, few threads.

A real server process on the test database: 60 pipelines wait at once while other API calls stay answered,
the worker's thread count stays far below the number of waits, /metrics (multiprocess mode) counts the waits
in flight, and every wait ends with its own clean outcome. Every other request runs in the server's fixed pool
of threads (files, form sign-in, the API), and the first schema requests at once all get it.
"""

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from overrides.models import ModulePullOverride
from tests.fixtures.jobs import wait_for
from tests.test_api_support import ci_user, make_token  # noqa: F401 - fixture

WAITS = 60
METRICS_TOKEN = "server-metrics-token"


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def test_many_waits_hold_no_thread_each_and_the_api_stays_answered(web_server_factory, ci_user,  # noqa: F811
                                                                    make_override):
    metrics_dir = tempfile.mkdtemp(prefix="mpo-test-metrics-")
    server = web_server_factory({"PROMETHEUS_MULTIPROC_DIR": metrics_dir, "PORTAL_METRICS_TOKEN": METRICS_TOKEN})
    base = server.url
    make_override(name="echo")
    ModulePullOverride.objects.filter(name="echo").update(sync_state="pending")  # nothing final: waits wait
    headers = {"Authorization": f"Bearer {make_token(ci_user, write=False)}"}
    [worker] = server.worker_pids()
    idle_threads = _threads(worker)

    def wait_once(_):
        return requests.get(f"{base}/api/v1/overrides/echo/rollout/", params={"timeout": 6}, headers=headers,
                            timeout=30)

    with ThreadPoolExecutor(WAITS) as pool:
        futures = [pool.submit(wait_once, i) for i in range(WAITS)]

        def in_flight() -> float:
            text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                                timeout=10).text
            line = next(x for x in text.splitlines() if x.startswith("mpo_portal_rollout_waits_in_flight"))
            return float(line.split()[-1]) == WAITS

        wait_for(in_flight, timeout=20, interval=0.2, what="all waits in flight")
        busy_threads = _threads(worker)
        started = time.monotonic()
        listing = requests.get(f"{base}/api/v1/overrides/", headers=headers, timeout=10)
        answered_in = time.monotonic() - started
        results = [f.result() for f in futures]
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert busy_threads < idle_threads + WAITS // 3, (idle_threads, busy_threads)
    assert [r.status_code for r in results] == [408] * WAITS
    assert all(r.json()["state"] == "timeout" for r in results)
    assert answered_in < 6  # answered while every wait was still open (they all last 6 s)
    print(f"threads: idle {idle_threads}, with {WAITS} waits {busy_threads}", file=sys.stderr)


def test_json_logs_of_the_real_server_are_one_object_per_line_with_the_request_id(web_server_factory, ci_user,  # noqa: F811
                                                                                    make_override):
    server = web_server_factory({"PORTAL_LOG_FORMAT": "json", "PORTAL_LOG_LEVEL": "INFO"})
    headers = {"Authorization": f"Bearer {make_token(ci_user)}"}
    missing = requests.get(f"{server.url}/api/v1/overrides/nothing-here/", headers=headers, timeout=10)
    assert missing.status_code == 404
    wait_for(lambda: missing.headers["X-Request-ID"] in server.log_tail(100_000), timeout=10, what="the log line")
    lines = [line for line in server.log_tail(100_000).splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [e for e in entries if e["request_id"] == missing.headers["X-Request-ID"]]
    assert mine and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["logger"].startswith(("gunicorn.", "uvicorn.")) for e in entries)  # the server's own lines too


def test_every_other_request_runs_in_the_servers_thread_pool(web_server_factory, ci_user, admin_user,  # noqa: F811
                                                            make_override):
    """Outside rollout waits the server answers as under WSGI, from a fixed pool of threads: a file streams whole,
    a form sign-in sets its cookies, API calls answer, and 40 requests at once add no thread beyond the pool."""
    server = web_server_factory({"PORTAL_WEB_THREADS": "3"})
    base = server.url
    css = requests.get(f"{base}/static/portal/portal.css", timeout=10)
    assert css.status_code == 200
    assert css.content == (Path(__file__).resolve().parent.parent / "static/portal/portal.css").read_bytes()

    # The server's own hasher (the tests' MD5 one is not in its settings), with few rounds.
    admin_user.password = PBKDF2PasswordHasher().encode("admin-pass-123", "saltsalt", iterations=1000)
    admin_user.save()
    session = requests.Session()
    session.get(f"{base}/login/", timeout=10)
    signed_in = session.post(f"{base}/login/", timeout=10, data={
        "csrfmiddlewaretoken": session.cookies["csrftoken"], "username": "admin", "password": "admin-pass-123"})
    assert signed_in.status_code == 200 and 'class="logout"' in signed_in.text

    make_override(name="echo")
    headers = {"Authorization": f"Bearer {make_token(ci_user, write=False)}"}
    [worker] = server.worker_pids()
    requests.get(f"{base}/api/v1/overrides/echo/", headers=headers, timeout=10)
    before = _threads(worker)
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{base}/api/v1/overrides/echo/", headers=headers,
                                                       timeout=30), range(40)))
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["name"] for a in answers} == {"echo"}
    assert _threads(worker) <= before + 2  # one pool thread had answered before: at most two more were started


def test_the_first_schema_requests_at_once_all_get_the_schema(web_server_factory):
    """drf-spectacular loads its extensions on the first schema generation, and two generations at once in one
    process used to race there (one answered 500)."""
    server = web_server_factory({"PORTAL_WEB_THREADS": "8"})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{server.url}/api/schema/", timeout=60), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
