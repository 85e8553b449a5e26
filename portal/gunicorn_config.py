"""gunicorn settings module (`--config python:portal.gunicorn_config`): Prometheus multiprocess bookkeeping."""

import os


def child_exit(server, worker) -> None:
    """A worker process ended: its live gauges (rollout waits in flight) no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
