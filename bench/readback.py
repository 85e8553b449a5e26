"""Read-back duration with the Modules of 2000 overridden modules, against the same read-back without Modules.

    .venv/bin/python bench/readback.py [--overrides 2000] [--passes 5]

Starts the kube API-server emulator in its own process, seeded with one ModuleSource, `--overrides` MPOs with
their status (digest, Ready) and as many Ready Modules (v1alpha1) and ModuleConfigs. The portal runs in this
process on a fresh SQLite file database with cluster sync on against the emulator; a first read-back imports the
MPOs and a first mirror writes the 2000 ClusterModule rows (timed apart: the one-off cost). Then `--passes`
alternating rounds of the steady-state read-back, `overrides.cluster.readback.read_back()`:

- with Modules: MPOs and ModuleSources listed and mirrored, then Modules and ModuleConfigs (two more list calls);
- baseline: the same function with the Module mirror switched off (what the read-back did before it).

Prints the median of each, the ratio, and the goal (at most 1.5x and under 2 s); then where the extra time goes:
the two list calls alone, and the mirror's own work on rows whose inputs did not change. The machine is shared: figures
vary from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOAL_RATIO, GOAL_SECONDS = 1.5, 2.0
DIGEST = "sha256:" + "d" * 64


def serve_emulator(count: int) -> None:
    """Child mode: a seeded emulator; prints its kubeconfig, serves until stdin closes."""
    from tests.kube.emulator import KubeEmulator

    emu = KubeEmulator(mpo_versions=["v1alpha1"], module_versions=["v1alpha1"]).start()
    emu.create_module_source("bench", "registry.example.com/deckhouse/modules", scheme="HTTPS")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for i in range(count):
        name = f"mod-{i:05d}"
        emu.create_mpo(name, "main", source="bench")
        emu.patch_status("mpo", name, {"imageDigest": DIGEST, "message": "Ready", "updatedAt": stamp})
        emu.create("modules", {"metadata": {"name": name}, "properties": {"source": "bench", "weight": 900}})
        emu.patch_status("modules", name, {"phase": "Ready", "hooksState": "ok", "conditions": [
            {"type": "EnabledByModuleManager", "status": "True", "lastTransitionTime": stamp},
            {"type": "IsReady", "status": "True", "reason": "Ready", "lastTransitionTime": stamp}]})
        emu.create("mc", {"metadata": {"name": name}, "spec": {"enabled": True}})
    print(json.dumps({"kubeconfig": emu.kubeconfig_path}), flush=True)
    sys.stdin.read()
    emu.stop()


def setup_django(workdir: str, kubeconfig: str) -> None:
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": workdir,
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3", "PORTAL_CLUSTER": "on", "KUBECONFIG": kubeconfig,
        "PORTAL_DEBUG": "0", "PORTAL_LOG_LEVEL": "WARNING", "PORTAL_CLUSTER_TIMEOUT": "60",
    })
    from portal.devkeys import ensure_dev_keys

    ensure_dev_keys(Path(workdir))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overrides", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.overrides)
        return 0
    child = subprocess.Popen([sys.executable, __file__, "--serve-emulator", "--overrides", str(args.overrides)],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        kubeconfig = json.loads(child.stdout.readline())["kubeconfig"]
        with tempfile.TemporaryDirectory(prefix="bench-readback-") as workdir:
            setup_django(workdir, kubeconfig)
            from overrides.cluster import modules as cluster_modules
            from overrides.cluster import readback
            from overrides.models import ClusterModule, ModulePullOverride

            mirror, start = cluster_modules.mirror_modules, cluster_modules.start_listing

            def modules(on: bool) -> None:
                """Switch the Module half of the read-back on, or off (the read-back as it was before)."""
                cluster_modules.mirror_modules = mirror if on else (lambda **kwargs: ("", 0, []))
                cluster_modules.start_listing = start if on else (lambda: None)

            modules(False)
            imported = timed(readback.read_back)
            modules(True)
            first_mirror = timed(mirror)
            rows = ClusterModule.objects.filter(ready_digest=DIGEST).count()
            print(f"{ModulePullOverride.objects.count()} overrides imported in {imported:.1f} s; first Module "
                  f"mirror (creates {rows} ready rows) {first_mirror:.2f} s")
            with_modules, baseline = [], []
            for _ in range(args.passes):
                modules(False)
                baseline.append(timed(readback.read_back))
                modules(True)
                with_modules.append(timed(readback.read_back))
            from concurrent.futures import Future

            listing_times, mirror_times = [], []
            for _ in range(args.passes):
                started = time.perf_counter()
                listed = cluster_modules.list_modules()
                listing_times.append(time.perf_counter() - started)
                done: Future = Future()
                done.set_result(listed)
                mirror_times.append(timed(lambda: mirror(listing=done)))  # noqa: B023 - called at once
            print(f"where the extra goes (medians): listing {args.overrides} Modules and ModuleConfigs "
                  f"{statistics.median(listing_times):.3f} s, mirroring them into the rows "
                  f"{statistics.median(mirror_times):.3f} s")
            base, full = statistics.median(baseline), statistics.median(with_modules)
            ratio = full / base
            print(f"read-back, {args.overrides} overrides, median of {args.passes}: without Modules {base:.3f} s, "
                  f"with {args.overrides} Modules and ModuleConfigs {full:.3f} s; ratio {ratio:.2f}x "
                  f"(goal <= {GOAL_RATIO}x and < {GOAL_SECONDS:g} s: "
                  f"{'met' if ratio <= GOAL_RATIO and full < GOAL_SECONDS else 'NOT met'})")
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
