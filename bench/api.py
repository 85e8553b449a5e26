"""REST API throughput under CI-like load: the portal under gunicorn with the cluster emulator, against the
same client talking to the emulator alone.

    .venv/bin/python bench/api.py [--clients 50] [--duration 30] [--backends sqlite postgres]
                                  [--sqlite-workers 2] [--postgres-workers 4] [--no-qcluster]

Measures the emulator alone once, then the portal once per backend, each in a child process with a fresh
temporary directory: the kube API-server emulator (`tests.kube.emulator`, its own process), the portal under the
shipped web server (`manage.py serve`'s: gunicorn with uvicorn workers on `portal.asgi`; on PostgreSQL with a
connection pool) with cluster sync on against the emulator, and a django-q2 cluster (`manage.py qcluster`) that
applies the changes to the emulator, as in production. SQLite is a file under the directory; PostgreSQL a
throwaway server (`tests/scripts/with-postgres`, Debian's postgresql) with a throwaway Redis as the broker
(`tests/scripts/with-redis`), as in production. Then `--clients` threads, each with its
own HTTP session and a few module names of its own, run for `--duration` seconds:

1. baseline: raw round trips to the emulator alone: create (POST) or merge-patch (PATCH) an MPO's imageTag, and
   read it back (GET), alternately;
2. portal: upsert (PUT /api/v1/overrides/<name>/ with a bearer token) and read (GET) alternately.

A third of the upserts repeat the current tag (a no-op: no audit record, no apply), the rest change it. Prints
throughput and p50/p95 latency per run and kind, the portal/emulator ratios per backend, errors, and how long the
portal's queue took to get every override synced to the emulator afterwards. Each run starts once every process has
finished starting (their CPU at rest) and after `WARM_UP` seconds of the same load, unmeasured. Figures vary
with the machine;
nothing here asserts a threshold (the goal on PostgreSQL: at least 0.5x the emulator's throughput, 0 errors).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.proctree import tree_cpu  # noqa: E402

PYTHON = sys.executable
NAMES_PER_CLIENT = 4
TAGS = ("main", "pr1", "pr2")
WARM_UP = 3.0  # seconds of the same load before each measured run, once every process has started
MPO_PATH = "/apis/deckhouse.io/v1alpha1/modulepulloverrides"


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            if ok:
                self.latencies[kind].append(seconds)
            else:
                self.errors[f"{kind}: {detail}"[:160]] += 1

    def ok(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_emulator() -> None:
    """Child mode: run the emulator, print its URL and kubeconfig, serve until stdin closes."""
    from tests.kube.emulator import KubeEmulator

    emulator = KubeEmulator().start()
    print(json.dumps({"url": emulator.url, "kubeconfig": emulator.kubeconfig_path}), flush=True)
    sys.stdin.read()
    emulator.stop()


def run_clients(clients: int, duration: float, step) -> Results:
    """`clients` threads calling `step(session, client, n, results)` until the time is up."""
    results = Results()
    deadline = time.monotonic() + duration
    start = threading.Barrier(clients)

    def worker(client: int) -> None:
        session = requests.Session()
        start.wait()
        n = 0
        while time.monotonic() < deadline:
            step(session, client, n, results)
            n += 1
        session.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def timed(results: Results, kind: str, call) -> requests.Response | None:
    started = time.perf_counter()
    try:
        response = call()
    except requests.RequestException as exc:
        results.add(kind, 0, False, type(exc).__name__)
        return None
    elapsed = time.perf_counter() - started
    results.add(kind, elapsed, response.status_code < 400, f"HTTP {response.status_code} {response.text[:80]}")
    return response


def next_tag(rng: random.Random, current: str | None) -> str:
    if current is not None and rng.random() < 1 / 3:
        return current  # a repeated upsert: a no-op for the portal
    return rng.choice([t for t in TAGS if t != current])


def emulator_step(base_url: str):
    """Raw MPO round trips: POST the first time, merge-PATCH the tag after, GET in between."""
    state: dict[str, str] = {}
    rng = random.Random(1)

    def step(session: requests.Session, client: int, n: int, results: Results) -> None:
        name = f"base-c{client}-m{(n // 2) % NAMES_PER_CLIENT}"
        url = f"{base_url}{MPO_PATH}"
        if n % 2 == 1:
            timed(results, "read", lambda: session.get(f"{url}/{name}", timeout=30))
            return
        tag = next_tag(rng, state.get(name))
        if name not in state:
            body = {"apiVersion": "deckhouse.io/v1alpha1", "kind": "ModulePullOverride", "metadata": {"name": name},
                    "spec": {"imageTag": tag, "source": "bench", "scanInterval": "15s"}}
            response = timed(results, "write", lambda: session.post(url, json=body, timeout=30))
        else:
            response = timed(results, "write", lambda: session.patch(
                f"{url}/{name}", data=json.dumps({"spec": {"imageTag": tag}}),
                headers={"Content-Type": "application/merge-patch+json"}, timeout=30))
        if response is not None and response.status_code < 400:
            state[name] = tag

    return step


def portal_step(base_url: str, token: str):
    """The API as a pipeline uses it: upsert (PUT), then read (GET)."""
    state: dict[str, str] = {}
    rng = random.Random(2)
    headers = {"Authorization": f"Bearer {token}"}

    def step(session: requests.Session, client: int, n: int, results: Results) -> None:
        name = f"c{client}-m{(n // 2) % NAMES_PER_CLIENT}"
        url = f"{base_url}/api/v1/overrides/{name}/"
        if n % 2 == 1:
            timed(results, "read", lambda: session.get(url, headers=headers, timeout=60))
            return
        tag = next_tag(rng, state.get(name))
        response = timed(results, "write", lambda: session.put(url, json={"source": "bench", "imageTag": tag},
                                                                headers=headers, timeout=60))
        if response is not None and response.status_code < 400:
            state[name] = tag

    return step


def summarize(title: str, results: Results, duration: float) -> dict[str, float]:
    every = [s for v in results.latencies.values() for s in v]
    figures = {"throughput": len(every) / duration}
    print(f"\n{title}")
    for kind, values in [("all", every), *sorted(results.latencies.items())]:
        if not values:
            continue
        quantiles = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        p50, p95 = quantiles[49] * 1000, quantiles[94] * 1000
        if kind == "all":
            figures.update(p50=p50, p95=p95)
        print(f"  {kind:6} {len(values) / duration:8.1f} req/s   p50 {p50:7.1f} ms   p95 {p95:7.1f} ms"
              f"   ({len(values)} requests)")
    failed = sum(results.errors.values())
    print(f"  errors {failed}" + "".join(f"\n    {count} x {what}" for what, count in results.errors.items()))
    return figures


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout:.0f}s")


def settle(procs: list[subprocess.Popen], timeout: float = 90.0) -> None:
    """Wait until the started processes are done starting (every gunicorn worker and qcluster worker imports
    Django, about 1.5 CPU seconds each): their CPU grows by less than a tenth of a core over a second."""
    deadline = time.monotonic() + timeout
    used = sum(tree_cpu(p.pid) for p in procs)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(tree_cpu(p.pid) for p in procs)
        if now - used < 0.1:
            return
        used = now


def prepare_portal(workdir: str, kubeconfig: str) -> tuple[dict[str, str], str]:
    """Environment for the portal's processes; a migrated database with a user, a token and the source. The
    database is DATABASE_URL when it is set (the PostgreSQL run), else a SQLite file in `workdir`."""
    database = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/portal.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": workdir,
           "DATABASE_URL": database, "KUBECONFIG": kubeconfig, "PORTAL_CLUSTER": "on",
           "PORTAL_DEBUG": "0", "PORTAL_LOG_LEVEL": "WARNING", "PORTAL_ALLOWED_HOSTS": "127.0.0.1,localhost",
           "PORTAL_API_TOKEN_RATE": "1000000/min"}  # measure the API, not its per-token rate limit
    env.pop("PORTAL_Q_SYNC", None)
    os.environ.update(env)
    from portal.devkeys import ensure_dev_keys

    ensure_dev_keys(Path(workdir))  # the settings only read keys
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from overrides import services
    from overrides.audit import Actor
    from overrides.models import ApiToken

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench", password="bench-pass-123", email="")
    token = ApiToken.generate()
    row = ApiToken(user=user, description="bench")
    row.set_key(token)
    row.save()
    services.source_create(actor=Actor.system("cli"), name="bench", repo="registry.example.com/deckhouse/modules")
    return env, token


def wait_synced(timeout: float) -> tuple[float, int, int]:
    """Seconds until every override is synced to the emulator (or the timeout), synced count, total."""
    from django.db import connection

    from overrides.models import ModulePullOverride, SyncState

    started = time.monotonic()
    while True:
        total = ModulePullOverride.objects.count()
        synced = ModulePullOverride.objects.filter(sync_state=SyncState.SYNCED).count()
        connection.close()
        if synced == total or time.monotonic() - started > timeout:
            return time.monotonic() - started, synced, total
        time.sleep(0.5)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            if proc.stdin:
                proc.stdin.close()
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_emulator(procs: list[subprocess.Popen]) -> dict[str, str]:
    emulator = subprocess.Popen([PYTHON, __file__, "--serve-emulator"], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    procs.append(emulator)
    return json.loads(emulator.stdout.readline())


def portal_run(args) -> None:
    """Child mode: the portal on this process's database (DATABASE_URL, or SQLite); prints a FIGURES line."""
    workdir = tempfile.mkdtemp(prefix="bench-api-")
    procs: list[subprocess.Popen] = []
    backend = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    backend += " + Redis" if os.environ.get("PORTAL_REDIS_URL") else ""
    try:
        info = start_emulator(procs)
        env, token = prepare_portal(workdir, info["kubeconfig"])
        from overrides.management.commands.serve import web_command, web_environment

        port = free_port()
        command = web_command("127.0.0.1", port, args.workers)
        if args.wsgi:  # the former server, for comparison: gunicorn threads on portal.wsgi
            command = [PYTHON, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
                       str(args.workers), "--threads", "8"]
        web = subprocess.Popen(command + ["--log-level", "warning"], cwd=ROOT, env=web_environment(env),
                               stdout=subprocess.DEVNULL)
        procs.append(web)
        if not args.no_qcluster:
            from django_q.tasks import async_task

            from overrides.polling.watchdog import DISPATCHER_TASK

            procs.append(subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            async_task(DISPATCHER_TASK)  # as `manage.py serve` does, instead of waiting for the watchdog Schedule
        portal_url = f"http://127.0.0.1:{port}"
        wait_http(portal_url + "/livez")
        settle(procs)
        step = portal_step(portal_url, token)
        run_clients(args.clients, WARM_UP, step)  # every worker has served before the measured run
        settle(procs)
        cpu = tree_cpu(web.pid), sum(tree_cpu(p.pid) for p in procs)
        api = run_clients(args.clients, args.duration, step)
        cpu = tree_cpu(web.pid) - cpu[0], sum(tree_cpu(p.pid) for p in procs) - cpu[1]
        figures = summarize(f"portal API on {backend}, {args.workers} web workers (PUT upsert + GET, bearer token)",
                            api, args.duration)
        served = max(api.ok(), 1)
        print(f"  CPU per request: web server {cpu[0] / served * 1000:.1f} ms, web + qcluster + emulator "
              f"{cpu[1] / served * 1000:.1f} ms")
        figures["errors"] = sum(api.errors.values())
        if not args.no_qcluster:
            seconds, synced, total = wait_synced(timeout=120)
            print(f"  apply queue drained: {synced}/{total} overrides synced to the emulator "
                  f"{seconds:.1f} s after the load stopped")
        print("FIGURES " + json.dumps(figures), flush=True)
    finally:
        stop_all(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--sqlite-workers", type=int, default=2)
    parser.add_argument("--postgres-workers", type=int, default=4)
    parser.add_argument("--no-qcluster", action="store_true", help="leave the apply queue unprocessed")
    parser.add_argument("--wsgi", action="store_true", help="serve with gunicorn threads on portal.wsgi instead")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--portal-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator()
        return
    if args.portal_run:
        portal_run(args)
        return

    print(f"{args.clients} clients x {args.duration:g} s; cluster sync on"
          f"{' (qcluster applying to the emulator)' if not args.no_qcluster else ' (no qcluster)'}; "
          f"{os.cpu_count()} CPUs shared by everything")
    procs: list[subprocess.Popen] = []
    try:
        info = start_emulator(procs)
        step = emulator_step(info["url"])
        run_clients(args.clients, WARM_UP, step)
        baseline = summarize("emulator alone (create/merge-patch + get, raw HTTP)",
                             run_clients(args.clients, args.duration, step), args.duration)
    finally:
        stop_all(procs)
    ratios = []
    for backend in args.backends:
        workers = args.sqlite_workers if backend == "sqlite" else args.postgres_workers
        command = [PYTHON, __file__, "--portal-run", "--workers", str(workers), "--clients", str(args.clients),
                   "--duration", str(args.duration), *(["--no-qcluster"] if args.no_qcluster else []),
                   *(["--wsgi"] if args.wsgi else [])]
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        if backend == "postgres":  # the production shape: PostgreSQL, and Redis as django-q2's broker
            command = [str(ROOT / "tests/scripts/with-postgres"), str(ROOT / "tests/scripts/with-redis"), *command]
        run = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        lines = run.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("FIGURES ")))
        found = [json.loads(line[8:]) for line in lines if line.startswith("FIGURES ")]
        if run.returncode or not found:
            print(f"  the {backend} run failed (exit {run.returncode})")
            continue
        ratios.append((backend, workers, found[0]))
    print("\nportal / emulator (same run)")
    for backend, workers, figures in ratios:
        print(f"  {backend:8} {workers} web workers: throughput {figures['throughput'] / baseline['throughput']:.2f}x"
              f"   p50 {figures['p50'] / baseline['p50']:.1f}x   p95 {figures['p95'] / baseline['p95']:.1f}x"
              f"   errors {figures['errors']}")


if __name__ == "__main__":
    main()
