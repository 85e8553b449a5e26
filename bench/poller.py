"""Digest polling under the real qcluster: throughput, lateness, CPU, and detection latency by polling and webhook.

    .venv/bin/python bench/poller.py [--sizes 100 1000 3000] [--seconds 60] [--workers 4] [--qclusters 1]
    tests/scripts/with-postgres tests/scripts/with-redis .venv/bin/python bench/poller.py --sizes 3000 \
        --qclusters 2 --failover          # the production shape: PostgreSQL, Redis, two qclusters, a SIGKILL

For each size N it starts, on a fresh database (SQLite in a temporary directory, or DATABASE_URL when set; the
django-q2 broker is Redis when PORTAL_REDIS_URL is set, else the database):
- registry A (Debian's docker-registry) holding N modules, each with tag `main`, polled by N overrides at 15 s;
- registry B, configured with `notifications.endpoints` pointing at the portal's webhook, holding 20 modules whose
  overrides poll only hourly, so a change there is found through the webhook or not at all;
- the portal's web server (gunicorn, for the webhook) and `--qclusters` times `manage.py qcluster` (4 workers).
The N overrides get first due times spread evenly over one interval; then, for `--seconds`, it records every check
(each change of `registry_checked_at`, sampled at 10 Hz from the database), re-pushes an A tag and a B tag every
few seconds, and measures:
- checks/s achieved vs required (N / 15 s); due slots missed (no check completed in the slot) and checked twice
  (two checks in one slot), each check counted in the last slot due before it completed;
- lateness of each check: its completion time minus its due time, p50/p95/p99 (the due times are known: the
  first one set here, then every 15 s after it); the gap between two checks of one override, p5/p95 (a check
  late by most of an interval makes a short gap before the next slot's check: short gaps alone are no doubles);
- CPU seconds of the qcluster process tree (and of the registry and web server apart), from /proc;
- detection latency: from the end of a push to the `observed_at` of the new DigestObservation, p95, by polling
  (registry A) and by webhook (registry B).
With `--failover`, after the window it SIGKILLs the qcluster whose dispatcher holds the lease and reports when
another took the lease over and the longest gap between two checks of one override across the kill.
Goals on a 2-core machine: 1000 overrides with p99 lateness <= 1.5 s; detection p95 <= 15 s + 1.5 s by polling
and <= 1 s by webhook; on PostgreSQL + Redis with two qclusters: 3000 overrides, no missed slot, p99 <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.proctree import tree_cpu  # noqa: E402

INTERVAL = 15.0
WEBHOOK_MODULES = 20
SECRET = "bench-webhook-secret"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the environment -----------------------------------------------------------------------------------------------

def setup_django(workdir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORTAL_Q_SYNC", "KUBECONFIG")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": workdir,
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.sqlite3", "PORTAL_CLUSTER": "off",
        "PORTAL_WEBHOOK_SECRET": SECRET, "PORTAL_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    os.environ.update(env)
    from pathlib import Path

    from portal.devkeys import ensure_dev_keys

    ensure_dev_keys(Path(workdir))  # the settings only read keys
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def start_process(args: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait_http(url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def push_all(registry, modules: list[str], tag: str = "main") -> dict[str, str]:
    with ThreadPoolExecutor(8) as pool:
        digests = pool.map(lambda m: registry.push(m, tag, f"{m} v0", media_type="docker"), modules)
        return dict(zip(modules, digests, strict=True))


# --- one size ------------------------------------------------------------------------------------------------------

def reset_database() -> None:
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Task

    from overrides.models import DigestObservation, Lease, ModulePullOverride, ModuleSource, ObjectChange
    from overrides.polling.lease import LEASE
    from overrides.polling.watchdog import ensure_schedules

    DigestObservation.objects.all().delete()
    ModulePullOverride.all_objects.all().delete()
    ModuleSource.all_objects.all().delete()
    OrmQ.objects.all().delete()
    get_broker().purge_queue()
    Task.objects.all().delete()
    ObjectChange.objects.all().delete()
    ensure_schedules()
    # The previous size's qcluster was killed: free its lease now rather than after the lease's TTL.
    Lease.objects.filter(name=LEASE).update(holder="", successor="", expires_at=timezone.now())


def create_overrides(source, digests: dict[str, str], interval: str) -> list[int]:
    from overrides.models import ModulePullOverride, SyncState

    far = datetime.now(UTC) + timedelta(days=1)
    rows = [ModulePullOverride(name=m, source=source, image_tag="main", scan_interval=interval, registry_digest=d,
                               next_check_at=far, sync_state=SyncState.OFF) for m, d in digests.items()]
    ModulePullOverride.objects.bulk_create(rows, batch_size=500)
    return list(ModulePullOverride.objects.filter(source=source).order_by("name").values_list("pk", flat=True))


class Sampler(threading.Thread):
    """Every check of the source's overrides: each new `registry_checked_at`, read at 10 Hz (its own connection)."""

    def __init__(self, source_id: int) -> None:
        super().__init__(daemon=True)
        self.source_id = source_id
        self.seen: set[tuple[int, str]] = set()
        self.checks: dict[int, list[float]] = defaultdict(list)
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from overrides.models import ModulePullOverride

        since = datetime(2000, 1, 1, tzinfo=UTC)
        while not self.stop.is_set():
            rows = list(ModulePullOverride.objects.filter(source_id=self.source_id, registry_checked_at__gt=since)
                        .values_list("id", "registry_checked_at"))
            for pk, checked in rows:
                if (pk, checked) not in self.seen:
                    self.seen.add((pk, checked))
                    self.checks[pk].append(checked.timestamp())
            if rows:
                since = max(since, max(c for _, c in rows) - timedelta(seconds=3))
            time.sleep(0.1)
        connection.close()


def detection_latencies(pushes: list[tuple[int, str, float]], wait: float) -> list[float]:
    """Seconds from each push to the DigestObservation of its digest (waiting up to `wait` for the last ones)."""
    from overrides.models import DigestObservation

    deadline = time.time() + wait
    found: dict[int, float] = {}
    while time.time() < deadline and len(found) < len(pushes):
        for i, (pk, digest, pushed) in enumerate(pushes):
            if i not in found:
                seen = DigestObservation.objects.filter(override_id=pk, digest=digest).values_list(
                    "observed_at", flat=True).first()
                if seen is not None:
                    found[i] = seen.timestamp() - pushed
        time.sleep(0.5)
    return [found[i] for i in sorted(found)]


def run_size(n: int, seconds: float, args, env, workdir, reg_a, reg_b, digests_a, digests_b) -> dict:
    from django_q.tasks import async_task

    from overrides.models import ModulePullOverride, ModuleSource, SyncState
    from overrides.polling.watchdog import DISPATCHER_TASK

    reset_database()
    far = datetime.now(UTC) + timedelta(days=1)
    source_a = ModuleSource.objects.create(name="bench-a", repo=reg_a.repo, scheme="HTTP", sync_state=SyncState.OFF,
                                           next_discovery_at=far)
    source_b = ModuleSource.objects.create(name="bench-b", repo=reg_b.repo, scheme="HTTP", sync_state=SyncState.OFF,
                                           next_discovery_at=far)
    modules_a = sorted(digests_a)[:n]
    pks_a = create_overrides(source_a, {m: digests_a[m] for m in modules_a}, "15s")
    pks_b = create_overrides(source_b, digests_b, "1h")
    by_name_b = dict(zip(sorted(digests_b), pks_b, strict=True))

    qenv = {**env, "PORTAL_Q_WORKERS": str(args.workers)}
    clusters = [start_process([sys.executable, "manage.py", "qcluster"], qenv, f"{workdir}/qcluster-{n}-{i}.log")
                for i in range(args.qclusters)]
    time.sleep(3 + 2 * args.qclusters)  # django setup and worker spawn
    async_task(DISPATCHER_TASK, group="dispatcher")  # instead of waiting up to 30 s for the watchdog's first pass
    t0 = datetime.now(UTC) + timedelta(seconds=3)
    first_due = {pk: t0 + timedelta(seconds=INTERVAL * i / n) for i, pk in enumerate(pks_a)}
    rows = [ModulePullOverride(pk=pk, next_check_at=when) for pk, when in first_due.items()]
    ModulePullOverride.objects.bulk_update(rows, ["next_check_at"], batch_size=500)
    sampler = Sampler(source_a.pk)
    sampler.start()
    while datetime.now(UTC) < t0:
        time.sleep(0.05)
    start, cpu0 = time.time(), (sum(tree_cpu(c.pid) for c in clusters), tree_cpu(reg_a.process.pid),
                                tree_cpu(args.web.pid))

    polled, hooked = [], []
    rng = random.Random(n)
    step = 2.0
    next_push = start + 2.0
    while time.time() < start + seconds:
        if time.time() >= next_push and time.time() < start + seconds - INTERVAL - 2:
            module = rng.choice(modules_a)
            digest = reg_a.push(module, "main", f"{module} {time.time()}", media_type="docker")
            polled.append((pks_a[modules_a.index(module)], digest, time.time()))
            module_b = rng.choice(sorted(digests_b))
            digest_b = reg_b.push(module_b, "main", f"{module_b} {time.time()}", media_type="docker")
            hooked.append((by_name_b[module_b], digest_b, time.time()))
            next_push += step
        time.sleep(0.02)
    end = time.time()
    cpu1 = (sum(tree_cpu(c.pid) for c in clusters), tree_cpu(reg_a.process.pid), tree_cpu(args.web.pid))
    detect_poll = detection_latencies(polled, wait=INTERVAL + 5)
    detect_hook = detection_latencies(hooked, wait=5)
    if args.dump:
        dump_checks(args.dump, first_due, sampler, start, end)
    failover = fail_over(clusters, sampler, pks_a) if args.failover else None
    sampler.stop.set()
    sampler.join()
    for cluster in clusters:
        stop_process(cluster)

    lateness, gaps, checks, expected, missed, doubled = [], [], 0, 0, 0, 0
    for pk, due0 in first_due.items():
        due0_ts = due0.timestamp()
        seen = sampler.checks.get(pk, [])
        times = [t for t in seen if start <= t < end]
        checks += len(times)
        due = {k for k in range(int(seconds / INTERVAL) + 2) if start <= due0_ts + k * INTERVAL < end - 2}
        expected += len(due)
        # Each check belongs to the last slot due before it completed (a check never completes before its due
        # time): a check late by most of an interval stays late, instead of passing for an early check of the
        # next slot. Checks of the window's slots may complete up to an interval after it.
        slots = [(int((t - due0_ts) // INTERVAL), t) for t in seen if start <= t < end + INTERVAL]
        slots = [(k, t) for k, t in slots if k in due]
        lateness += [t - (due0_ts + k * INTERVAL) for k, t in slots]
        missed += len(due - {k for k, _ in slots})
        doubled += len(slots) - len({k for k, _ in slots})
        gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    window = end - start
    return {
        "n": n, "window": window, "checks": checks, "expected": expected, "missed": missed, "doubled": doubled,
        "rate": checks / window,
        "required": n / INTERVAL, "lateness": lateness, "gaps": gaps,
        "cpu": tuple(b - a for a, b in zip(cpu0, cpu1, strict=True)), "poll": detect_poll, "hook": detect_hook,
        "pushes": (len(polled), len(hooked)), "qclusters": len(clusters), "failover": failover,
    }


def dump_checks(path: str, first_due: dict, sampler: Sampler, start: float, end: float) -> None:
    """For a closer look: every check seen (override, first due time, check times) and each dispatcher run (from
    django-q2's task results) as JSON."""
    import json

    from django_q.models import Task

    runs = [{"started": t.started.timestamp(), "stopped": t.stopped.timestamp(), "result": t.result}
            for t in Task.objects.filter(func__endswith="run_dispatcher").order_by("started")]
    checks = {pk: {"due0": due.timestamp(), "times": sampler.checks.get(pk, [])} for pk, due in first_due.items()}
    with open(path, "w") as fh:
        json.dump({"start": start, "end": end, "checks": checks, "runs": runs}, fh, default=str)


def _lease_holder_pid() -> int | None:
    from overrides.models import Lease
    from overrides.polling.lease import LEASE

    parts = (Lease.objects.filter(name=LEASE).values_list("holder", flat=True).first() or "").split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _process_group(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def fail_over(clusters: list[subprocess.Popen], sampler: Sampler, pks: list[int]) -> dict:
    """SIGKILL the qcluster holding the dispatcher lease; when the lease moved, and the longest check gap."""
    holder = _lease_holder_pid()
    victims = [c for c in clusters if holder is not None and _process_group(holder) == c.pid]
    if not victims or len(clusters) < 2:
        return {"error": "no lease holder among the qclusters, or only one qcluster"}
    killed = time.time()
    stop_process(victims[0])
    taken = None
    while time.time() < killed + 180:
        if _lease_holder_pid() not in (None, holder):
            taken = time.time()
            break
        time.sleep(0.1)
    time.sleep(2 * INTERVAL + 2)
    gaps = []
    for pk in pks:
        times = sampler.checks.get(pk, [])
        before, after = [t for t in times if t < killed][-1:], [t for t in times if t >= killed][:1]
        if before and after:
            gaps.append(after[0] - before[0])
    return {"takeover": (taken - killed) if taken else None, "max_gap": max(gaps) if gaps else None,
            "resumed": len(gaps), "of": len(pks)}


def report(r: dict, workers: int) -> None:
    late, gaps = r["lateness"], r["gaps"]
    within = sum(1 for g in gaps if abs(g - INTERVAL) <= 1.5) / len(gaps) * 100 if gaps else float("nan")
    cpu_q, cpu_reg, cpu_web = r["cpu"]
    print(f"\n== {r['n']} overrides @ {INTERVAL:g}s, {r['qclusters']} qcluster(s) x {workers} workers, "
          f"window {r['window']:.1f}s")
    print(f"  checks/s:    {r['rate']:.1f} achieved vs {r['required']:.1f} required "
          f"({r['checks']} checks; {r['missed']} of {r['expected']} due slots missed, {r['doubled']} checked twice)")
    print(f"  lateness:    p50 {percentile(late, 50):.3f}s  p95 {percentile(late, 95):.3f}s  "
          f"p99 {percentile(late, 99):.3f}s  max {max(late) if late else float('nan'):.3f}s")
    print(f"  gaps:        p5 {percentile(gaps, 5):.2f}s  p95 {percentile(gaps, 95):.2f}s  "
          f"({within:.1f}% within 15s +/- 1.5s)")
    print(f"  CPU seconds: qcluster tree {cpu_q:.1f} ({cpu_q / r['window'] * 100:.0f}% of one core), "
          f"registry A {cpu_reg:.1f}, web {cpu_web:.1f}")
    poll, hook = r["poll"], r["hook"]
    print(f"  detection by polling: p50 {percentile(poll, 50):.2f}s  p95 {percentile(poll, 95):.2f}s "
          f"({len(poll)}/{r['pushes'][0]} found; goal p95 <= {INTERVAL + 1.5:g}s)")
    print(f"  detection by webhook: p50 {percentile(hook, 50):.2f}s  p95 {percentile(hook, 95):.2f}s "
          f"({len(hook)}/{r['pushes'][1]} found; goal p95 <= 1s)")
    failover = r.get("failover")
    if failover and "error" not in failover:
        takeover = f"{failover['takeover']:.1f}s" if failover["takeover"] is not None else "not within 180s"
        gap = f"{failover['max_gap']:.1f}s" if failover["max_gap"] is not None else "-"
        print(f"  fail-over:   lease taken over {takeover} after the SIGKILL of its holder's qcluster; longest "
              f"gap between two checks of one override across it {gap} (interval {INTERVAL:g}s; "
              f"{failover['resumed']}/{failover['of']} checked again)")
    elif failover:
        print(f"  fail-over:   {failover['error']}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--qclusters", type=int, default=1)
    parser.add_argument("--failover", action="store_true", help="then SIGKILL the lease holder's qcluster")
    parser.add_argument("--dump", help="write every check seen and every dispatcher run to this JSON file")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="mpo-bench-poller-")
    env = setup_django(workdir)
    from tests.registries import LocalRegistry, NotifyingRegistry

    port = free_port()
    args.web = start_process([sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind",
                              f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"], env, f"{workdir}/web.log")
    reg_a = LocalRegistry(name="bench-a")
    reg_b = NotifyingRegistry(f"http://127.0.0.1:{port}/api/v1/webhooks/registry/", SECRET, name="bench-b")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/webhooks/registry/")
        started = time.time()
        digests_a = push_all(reg_a, [f"m{i:05d}" for i in range(max(args.sizes))])
        digests_b = push_all(reg_b, [f"w{i:02d}" for i in range(WEBHOOK_MODULES)])
        print(f"seeded {len(digests_a)} + {len(digests_b)} images in {time.time() - started:.0f}s; "
              f"{os.cpu_count()} CPUs; database {env['DATABASE_URL'].split(':', 1)[0]}, broker "
              f"{'Redis' if os.environ.get('PORTAL_REDIS_URL') else 'the database'}; logs in {workdir}")
        for n in args.sizes:
            report(run_size(n, args.seconds, args, env, workdir, reg_a, reg_b, digests_a, digests_b),
                   args.workers)
    finally:
        stop_process(args.web)
        reg_a.close()
        reg_b.close()


if __name__ == "__main__":
    main()
