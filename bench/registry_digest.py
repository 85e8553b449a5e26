"""Digest look-ups per second: the portal's registry client vs a raw `requests.Session` HEAD loop.

    .venv/bin/python bench/registry_digest.py [--lookups 2000] [--threads 8] [--rounds 1]

Starts its own local registries (Debian's docker-registry, through tests/registries/): anonymous HTTP and
htpasswd Basic auth. For each, `--lookups` HEADs of one manifest sequentially and spread over `--threads`
threads, raw then client (alternating the order each round), and prints look-ups/s and client/raw. The goal is a
ratio of at least 0.85: the client's extra work (dockerCfg, auth state, error mapping) must stay small next to a
round trip.

The raw loop is what a hand-written poller would do: one `requests.Session` per thread, the Accept header and (for
Basic) a precomputed Authorization header on every request. The client runs as the portal runs it: its shared
pooled sessions, Basic sent up front after the first challenge, timeouts on every request.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import requests  # noqa: E402

from registry import client  # noqa: E402
from tests.registries import ACCEPT, LocalRegistry  # noqa: E402

MODULE, TAG = "bench-module", "v1.0.0"


def run(lookup: Callable[[], str | None], total: int, threads: int, expected: str) -> float:
    """Look-ups per second of `total` calls of `lookup` over `threads` threads; every answer must be `expected`."""
    per_thread = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    failures: list[str | None] = []
    start_gate = threading.Barrier(threads + 1) if threads > 1 else None

    def worker(count: int) -> None:
        if start_gate:
            start_gate.wait()
        for _ in range(count):
            digest = lookup()
            if digest != expected:
                failures.append(digest)

    if threads == 1:
        started = time.perf_counter()
        worker(total)
        elapsed = time.perf_counter() - started
    else:
        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(worker, n) for n in per_thread]
            start_gate.wait()  # type: ignore[union-attr]
            started = time.perf_counter()
            for future in futures:
                future.result()
            elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} look-ups returned a wrong digest, e.g. {failures[0]!r}")
    return total / elapsed


def raw_lookup(reg: LocalRegistry) -> Callable[[], str | None]:
    url = f"{reg.url}/v2/deckhouse/modules/{MODULE}/manifests/{TAG}"
    headers = {"Accept": ACCEPT}
    if reg.username:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    local = threading.local()

    def lookup() -> str | None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return session.head(url, headers=headers, timeout=(3, 5)).headers.get("Docker-Content-Digest")

    return lookup


def client_lookup(reg: LocalRegistry) -> Callable[[], str | None]:
    source = reg.source(name=f"bench-{reg.auth or 'anonymous'}")

    def lookup() -> str | None:
        return client.resolve_digest(source, MODULE, TAG).digest

    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report the median")
    args = parser.parse_args()

    registries = {"anonymous": LocalRegistry(name="bench-anon"), "basic": LocalRegistry(auth="basic",
                                                                                        name="bench-basic")}
    rows = []
    try:
        for label, reg in registries.items():
            digest = reg.push(MODULE, TAG, "benchmark payload")
            impls = {"raw": raw_lookup(reg), "client": client_lookup(reg)}
            for threads in (1, args.threads):
                rates: dict[str, list[float]] = {"raw": [], "client": []}
                for round_no in range(args.rounds):
                    order = ["raw", "client"] if round_no % 2 == 0 else ["client", "raw"]
                    for name in order:
                        run(impls[name], min(200, args.lookups), threads, digest)  # warm pools, tokens, caches
                        rates[name].append(run(impls[name], args.lookups, threads, digest))
                raw, cli = statistics.median(rates["raw"]), statistics.median(rates["client"])
                mode = "sequential" if threads == 1 else f"{threads} threads"
                rows.append((label, mode, raw, cli, cli / raw))
    finally:
        client.reset()
        for reg in registries.values():
            reg.close()

    print(f"{args.lookups} digest look-ups per run, median of {args.rounds} round(s); "
          f"registry: docker-registry (distribution 2.8) on 127.0.0.1")
    print(f"{'auth':<10} {'mode':<12} {'raw HEAD/s':>11} {'client/s':>10} {'client/raw':>11}")
    for label, mode, raw, cli, ratio in rows:
        print(f"{label:<10} {mode:<12} {raw:>11.0f} {cli:>10.0f} {ratio:>11.2f}")
    worst = min(row[4] for row in rows)
    print(f"worst ratio {worst:.2f} (goal >= 0.85): {'OK' if worst >= 0.85 else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()
