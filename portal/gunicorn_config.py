"""gunicorn settings module (`--config python:portal.gunicorn_config`): Prometheus multiprocess bookkeeping, and
JSON lines for gunicorn's own log when PORTAL_LOG_FORMAT=json."""

import os


def child_exit(server, worker) -> None:
    """A worker process ended: its live gauges (rollout waits in flight) no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


if os.environ.get("PORTAL_LOG_FORMAT", "").strip().lower() == "json":
    # gunicorn's own lines (and uvicorn's, which go through them) as JSON too: one object per line in the log.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "portal.logformat.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["json"]},
        "loggers": {name: {"handlers": ["json"], "level": "INFO", "propagate": False}
                    for name in ("gunicorn.error", "gunicorn.access")},
    }
