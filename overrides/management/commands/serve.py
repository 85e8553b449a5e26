"""Run the web server and the django-q2 cluster together in the foreground; Ctrl-C or SIGTERM stops both."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from django.core.management.base import BaseCommand
from django_q.tasks import async_task

# Seconds the web server and django-q2 get to stop on their own (django-q2 waits for busy workers, and the
# dispatcher task runs for up to a minute); then the qcluster's whole process group is terminated.
STOP_GRACE = 5.0
KILL_GRACE = 3.0


def stop_process_group(process: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """Stop the qcluster and every process it started (sentinel, workers, monitor, pusher).

    The qcluster runs in a process group of its own. SIGTERM to its main process starts django-q2's own
    shutdown; a worker busy with a long task would keep it waiting, and if the main process dies first its
    children are orphaned and keep polling. So after `grace` seconds the group gets SIGTERM (django-q2's
    children die at once on it), and SIGKILL after that; the group is signalled even when the main process has
    already exited, so nothing it started outlives `serve`. The portal's work is level-triggered: a task cut
    short is done again by the next dispatcher.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break  # the group is empty: everything stopped
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()
            time.sleep(0.05)
    process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def web_command(host: str, port: int, workers: int) -> list[str]:
    """gunicorn with uvicorn workers on the ASGI application: a rollout wait holds no thread (see
    overrides/api/rollout_waits.py); other requests run in Django's threads as under WSGI."""
    return [
        sys.executable, "-m", "gunicorn", "portal.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--access-logfile", "-", "--graceful-timeout", "5",
        "--config", "python:portal.gunicorn_config",
    ]


def metrics_environment(env: dict[str, str]) -> dict[str, str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR shared by the web and job processes, unless one is given."""
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mpo-portal-metrics-")
    return env


def web_environment(env: dict[str, str]) -> dict[str, str]:
    """On PostgreSQL the ASGI server uses a connection pool (PORTAL_DB_POOL), unless set otherwise."""
    if env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        env = {**env, "PORTAL_DB_POOL": env.get("PORTAL_DB_POOL", "1")}
    return env


class Command(BaseCommand):
    help = "Run gunicorn and the django-q2 cluster (qcluster) together; stop both on Ctrl-C, SIGTERM or when one exits."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("PORTAL_WEB_WORKERS", "2")))

    def handle(self, *args, host: str, port: int, workers: int, **options):
        python = sys.executable
        web = web_command(host, port, workers)
        jobs = [python, "manage.py", "qcluster"]
        self.stdout.write(f"MPO Portal on http://{host}:{port}/ (admin at /admin/, API docs at /api/docs/)")
        env = metrics_environment(dict(os.environ))
        web_process = subprocess.Popen(web, env=web_environment(env))
        jobs_process = subprocess.Popen(jobs, env=env, process_group=0)
        procs = [web_process, jobs_process]
        # Start polling now rather than at the watchdog Schedule's first firing (django-q2 looks at Schedules
        # only every ~30 s); the dispatcher's lease makes a second start a no-op.
        async_task("overrides.tasks.run_dispatcher")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            if web_process.poll() is None:
                web_process.send_signal(signal.SIGTERM)
            stop_process_group(jobs_process)
            try:
                web_process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                web_process.kill()
        if not stopping:
            self.stderr.write("One of the processes exited; stopped the other.")
            sys.exit(1)
