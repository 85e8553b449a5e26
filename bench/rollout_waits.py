"""Rollout waits at scale: many pipelines waiting at once while others upsert, against a run with no waits.

    .venv/bin/python bench/rollout_waits.py [--waits 500] [--hold 60] [--clients 20] [--workers 2]
    tests/scripts/with-postgres .venv/bin/python bench/rollout_waits.py   # the same on PostgreSQL

Starts, in a fresh temporary directory, the kube API-server emulator and the portal under the shipped web server
(`manage.py serve`'s: gunicorn with uvicorn workers on `portal.asgi`), cluster sync on and no qcluster, so no
wait can end before its timeout. Database: DATABASE_URL when set, else SQLite in that directory. Then:

1. no waits: `--clients` threads upsert (PUT) and read (GET) overrides for `--hold` seconds;
2. waits: `--waits` long polls (`GET .../rollout/?timeout=<hold>`, from 10 read-only tokens, on 50 overrides,
   all held open at once by one asyncio client) and, while they are all open, the same `--clients` load.

Prints the other clients' throughput and p95 in both runs and their ratio (goal: p95 within 1.5x), the web
workers' threads and memory (RSS) idle and while the waits are held, and how the waits ended (goal: every one
408 `timeout` after the hold, none refused or dropped). The machine is shared: figures vary with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api as api_bench  # noqa: E402 - bench/api.py: emulator, portal set-up, load clients

ROOT = api_bench.ROOT
WAITED_OVERRIDES = 50
TOKENS = 10
METRICS_TOKEN = "bench-metrics-token"
DIGEST = "sha256:" + "0" * 64


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, RSS in KiB) of one process."""
    threads = rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return threads, rss


def workers_status(master: int) -> tuple[int, int]:
    pids = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    figures = [proc_status(pid) for pid in pids]
    return sum(t for t, _ in figures), sum(r for _, r in figures)


def waits_in_flight(url: str) -> float:
    text = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("mpo_portal_rollout_waits_in_flight"))


async def hold_waits(url: str, tokens: list[str], count: int, hold: float) -> Counter:
    """`count` concurrent rollout waits; returns how they ended ("408 timeout", "429", "error: ...")."""
    outcomes: Counter = Counter()
    timeout = aiohttp.ClientTimeout(total=hold + 120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(index: int) -> None:
            name = f"waited-{index % WAITED_OVERRIDES}"
            headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
            try:
                async with session.get(f"{url}/api/v1/overrides/{name}/rollout/", headers=headers,
                                       params={"digest": DIGEST, "timeout": str(int(hold))}) as response:
                    body = await response.json(content_type=None)
                    outcomes[f"{response.status} {body.get('state', body.get('detail', ''))}"[:80]] += 1
            except Exception as exc:  # noqa: BLE001 - counted as dropped
                outcomes[f"error: {type(exc).__name__}"] += 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", type=int, default=500)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-waits-")
    procs: list[subprocess.Popen] = []
    try:
        info = api_bench.start_emulator(procs)
        env, token = api_bench.prepare_portal(workdir, info["kubeconfig"])
        from django.contrib.auth import get_user_model

        from overrides import services
        from overrides.audit import Actor
        from overrides.management.commands.serve import web_command, web_environment
        from overrides.models import ApiToken, ModuleSource

        source = ModuleSource.objects.get(name="bench")
        for index in range(WAITED_OVERRIDES):
            services.override_create(actor=Actor.system("cli"), name=f"waited-{index}", source=source,
                                     image_tag="main")
        user = get_user_model().objects.get(username="bench")
        readers = []
        for _ in range(TOKENS):
            plaintext = ApiToken.generate()
            row = ApiToken(user=user, description="bench reader", write_enabled=False)
            row.set_key(plaintext)
            row.save()
            readers.append(plaintext)
        port = api_bench.free_port()
        metrics_dir = tempfile.mkdtemp(prefix="bench-waits-metrics-")
        web_env = web_environment({**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "PORTAL_LOG_LEVEL": "ERROR",
                                   "PORTAL_METRICS_TOKEN": METRICS_TOKEN})
        web = subprocess.Popen(web_command("127.0.0.1", port, args.workers) + ["--log-level", "warning"], cwd=ROOT,
                               env=web_env, stdout=subprocess.DEVNULL)
        procs.append(web)
        url = f"http://127.0.0.1:{port}"
        api_bench.wait_http(url + "/api/schema/")
        backend = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
        print(f"{args.waits} waits held {args.hold:g} s, {args.clients} other clients; {backend}, {args.workers} web "
              f"workers (uvicorn), {os.cpu_count()} CPUs shared by everything")
        idle = workers_status(web.pid)

        quiet = api_bench.run_clients(args.clients, args.hold, api_bench.portal_step(url, token))
        without = api_bench.summarize("other clients, no waits", quiet, args.hold)

        outcomes: Counter = Counter()
        holder = threading.Thread(target=lambda: outcomes.update(
            asyncio.run(hold_waits(url, readers, args.waits, args.hold))))
        started = time.monotonic()
        holder.start()
        deadline = started + 30
        while waits_in_flight(url) < args.waits and time.monotonic() < deadline:
            time.sleep(0.2)
        opened = time.monotonic() - started
        in_flight = waits_in_flight(url)
        held = workers_status(web.pid)
        busy = api_bench.run_clients(args.clients, max(args.hold - opened - 5, 5), api_bench.portal_step(url, token))
        during = workers_status(web.pid)
        holder.join()
        with_waits = api_bench.summarize(f"other clients, while {int(in_flight)} waits are held", busy,
                                         max(args.hold - opened - 5, 5))

        print(f"\nweb workers: threads {idle[0]} idle, {held[0]} with the waits open, {during[0]} under load too; "
              f"RSS {idle[1] / 1024:.0f} MiB idle, {max(held[1], during[1]) / 1024:.0f} MiB with the waits")
        print(f"waits: all {int(in_flight)} of {args.waits} in flight {opened:.1f} s after the first; ended: "
              + ", ".join(f"{count} x {what}" for what, count in outcomes.most_common()))
        refused = sum(count for what, count in outcomes.items() if not what.startswith("408"))
        print(f"\nratio (with waits / without): p95 {with_waits['p95'] / without['p95']:.2f}x "
              f"(goal <= 1.5x), throughput {with_waits['throughput'] / without['throughput']:.2f}x; "
              f"waits refused or dropped: {refused} (goal 0)")
        print("FIGURES " + json.dumps({"p95_ratio": with_waits["p95"] / without["p95"], "refused": refused}))
    finally:
        api_bench.stop_all(procs)


if __name__ == "__main__":
    main()
