"""Run the web server and the django-q2 cluster together in the foreground; Ctrl-C stops both."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from django.core.management.base import BaseCommand
from django_q.tasks import async_task


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
    help = "Run gunicorn and the django-q2 cluster (qcluster) together; stop both on Ctrl-C or when one exits."

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
        procs = [subprocess.Popen(web, env=web_environment(env)), subprocess.Popen(jobs, env=env)]
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
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
        if not stopping:
            self.stderr.write("One of the processes exited; stopped the other.")
            sys.exit(1)
