"""From push to pull: seconds from the end of a registry push until the cluster reports the new digest, with
auto-renew on and off in the same run.

    .venv/bin/python bench/push_to_pull.py [--pushes 20] [--controller-tick 0.1]

On a fresh SQLite database in a temporary directory it starts a registry (Debian's docker-registry) whose
`notifications.endpoints` point at the portal's webhook, the portal's web server (gunicorn) and `manage.py qcluster`
with cluster sync on against the Kubernetes API emulator of `tests/kube/`, and the simulated Deckhouse controller
(which reads an MPO's tag every `scanInterval` and at once on an annotation change, like the real one). 40 overrides:
20 at scanInterval 15s and 20 at 60s, created through the services and applied by the portal.

Then two phases, each pushing a new build of `--pushes` distinct overrides (half of each interval), one every 1.5 s:
auto-renew on (the per-override switch on), then off. For each push it measures the time from the end of the push to
the emulator's `status.imageDigest` showing the new digest (read in-process every 20 ms). Goal: p95 <= 2 s with
auto-renew on; off, the controller's own scan decides (about the scanInterval).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.poller import free_port, percentile, start_process, stop_process, wait_http  # noqa: E402

SECRET = "bench-webhook-secret"
GROUPS = {"15s": 20, "60s": 20}


def setup(workdir: str, kubeconfig: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORTAL_Q_SYNC",)}
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": workdir,
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3", "PORTAL_CLUSTER": "auto", "KUBECONFIG": kubeconfig,
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


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")


def cluster_digest(emu, name: str) -> str:
    return ((emu.get("mpo", name) or {}).get("status") or {}).get("imageDigest", "")


def phase(emu, registry, modules: dict[str, str], pushes: int, auto: bool, rng: random.Random) -> dict[str, list]:
    """Push a new build of `pushes` distinct overrides (half per interval); seconds to the cluster per interval."""
    from overrides.models import ModulePullOverride

    ModulePullOverride.objects.update(auto_renew=auto)
    chosen = []
    for interval in GROUPS:
        names = [m for m, i in modules.items() if i == interval]
        chosen += rng.sample(names, pushes // 2)
    rng.shuffle(chosen)
    pending: dict[str, tuple[str, float]] = {}
    results: dict[str, list[float]] = {interval: [] for interval in GROUPS}
    missed: list[str] = []
    next_push = time.monotonic()
    while chosen or pending:
        now = time.monotonic()
        if chosen and now >= next_push:
            name = chosen.pop()
            digest = registry.push(name, "main", f"{name} {time.time()}", media_type="docker")
            pending[name] = (digest, time.monotonic())
            next_push = now + 1.5
        for name, (digest, pushed) in list(pending.items()):
            if cluster_digest(emu, name) == digest:
                results[modules[name]].append(time.monotonic() - pushed)
                del pending[name]
            elif time.monotonic() - pushed > 90:
                missed.append(name)
                del pending[name]
        time.sleep(0.02)
    results["missed"] = missed
    return results


def report(label: str, results: dict[str, list]) -> float:
    every = [s for interval in GROUPS for s in results[interval]]
    print(f"  auto-renew {label}: p50 {percentile(every, 50):.2f}s  p95 {percentile(every, 95):.2f}s  "
          f"max {max(every):.2f}s  ({len(every)} pushes, {len(results['missed'])} never reached the cluster)")
    for interval in GROUPS:
        values = results[interval]
        print(f"    scanInterval {interval}: p50 {percentile(values, 50):.2f}s  p95 {percentile(values, 95):.2f}s "
              f"({len(values)} pushes)")
    return percentile(every, 95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=20, help="pushes per phase (half at 15s, half at 60s)")
    parser.add_argument("--controller-tick", type=float, default=0.1)
    args = parser.parse_args()

    from tests.kube.controller import DeckhouseController
    from tests.kube.emulator import KubeEmulator

    emu = KubeEmulator().start()
    workdir = tempfile.mkdtemp(prefix="mpo-bench-push-")
    env = setup(workdir, emu.kubeconfig_path)
    from django_q.tasks import async_task

    from overrides import services
    from overrides.audit import Actor
    from overrides.models import ModulePullOverride, SyncState
    from overrides.polling.watchdog import DISPATCHER_TASK
    from tests.registries import NotifyingRegistry

    port = free_port()
    web = start_process([sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
                         "--workers", "1", "--threads", "4"], env, f"{workdir}/web.log")
    registry = NotifyingRegistry(f"http://127.0.0.1:{port}/api/v1/webhooks/registry/", SECRET, name="bench-push")
    controller = DeckhouseController(emu, interval=args.controller_tick, source_interval=3600).start()
    qcluster = None
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/webhooks/registry/")
        actor = Actor.system("cli")
        source = services.source_create(actor=actor, name="bench", repo=registry.repo, scheme="HTTP")
        modules = {f"p{interval}-{i:02d}": interval for interval, count in GROUPS.items() for i in range(count)}
        for name in modules:
            registry.push(name, "main", f"{name} v0", media_type="docker")
        for name, interval in modules.items():
            services.override_create(actor=actor, name=name, source=source, image_tag="main", scan_interval=interval)
        qcluster = start_process([sys.executable, "manage.py", "qcluster"], env, f"{workdir}/qcluster.log")
        time.sleep(3)
        async_task(DISPATCHER_TASK, group="dispatcher")
        live = ModulePullOverride.objects
        wait_until(lambda: all(cluster_digest(emu, m) for m in modules), 120, "the cluster to run every override")
        wait_until(lambda: not live.exclude(sync_state=SyncState.SYNCED).exists()
                   and not live.filter(cluster_seen_at__isnull=True).exists(), 120, "apply and read-back")
        print(f"{len(modules)} overrides running (20 @ 15s, 20 @ 60s); {os.cpu_count()} CPUs; logs in {workdir}")
        rng = random.Random(16)
        on = report("on ", phase(emu, registry, modules, args.pushes, True, rng))
        off = report("off", phase(emu, registry, modules, args.pushes, False, rng))
        print(f"  p95 ratio on/off: {on / off:.3f} (goal: p95 <= 2 s with auto-renew on)")
        failed = [line for line in registry.log_tail(200_000).splitlines() if "notif" in line.lower()]
        print(f"  registry notification errors: {len(failed)}" + (f"; last: {failed[-1][:300]}" if failed else ""))
        assert not controller.errors, controller.errors[:1]
    finally:
        controller.stop()
        if qcluster is not None:
            stop_process(qcluster)
        stop_process(web)
        registry.close()
        emu.stop()


if __name__ == "__main__":
    main()
