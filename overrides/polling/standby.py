"""The standby: one thread per qcluster that takes the dispatcher lease over as soon as its holder is gone.

A dispatcher chain breaks when the qcluster running it dies: its lease stops being renewed, and the successor task
it enqueued may have been popped by the dead qcluster (django-q2's Redis broker does not acknowledge), so nothing
would run until the minute watchdog Schedule fired (28-45 s measured). Instead every qcluster keeps a standby:

- django-q2 sends `post_spawn` in each worker process it forks (`django_q.worker.worker`); `start()`, connected to
  it in `OverridesConfig.ready()`, starts a daemon thread there. The worker's own loop keeps taking tasks.
- Of the workers of one qcluster, the one that bound an abstract Unix socket named after their common parent (the
  Sentinel process) is the standby; the others try again every `ROLE_RETRY` seconds, so a recycled or killed
  worker's role passes to a sibling (the kernel frees the name with the process; no file is left behind).
- The standby reads the `Lease` row every `POLL` seconds; when it is free or expired it takes it with the lease's
  compare-and-swap (`DispatcherLease.acquire`: of several standbys exactly one wins) and runs the dispatcher in this
  thread. That run enqueues its successor task as usual, and the chain goes on in tasks.

So a dead holder is replaced within `LEASE_TTL` plus about `POLL`. The watchdog Schedule stays as the last resort
(no worker process alive to hold a standby). Nothing is lost or doubled by the take-over: claims are compare-and-swap
on each row's `next_check_at`, whoever holds the lease.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, connection

logger = logging.getLogger("overrides.polling.dispatcher")

POLL = 0.5  # seconds between two looks at the lease
ROLE_RETRY = 1.0  # seconds between a non-standby worker's attempts to become its qcluster's standby

_thread: threading.Thread | None = None


def start(sender: Any = None, proc_name: str = "", **kwargs: Any) -> None:
    """django-q2's `post_spawn` receiver, in a freshly forked worker process: start its standby thread (once)."""
    global _thread
    from django_q.conf import Conf

    if Conf.SYNC or (_thread is not None and _thread.is_alive()):
        return
    _thread = threading.Thread(target=_serve, args=(_role_name(),), name="dispatcher-standby", daemon=True)
    _thread.start()


def _role_name() -> str:
    """One name per qcluster: the workers of a qcluster are children of its Sentinel process."""
    return f"\0mpo-portal-dispatcher-standby-{os.getppid()}"


def _take_role(name: str) -> socket.socket | None:
    """The socket holding the qcluster's standby role, or None while a sibling worker holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
    except OSError:
        sock.close()
        return None
    return sock


def _serve(role: str) -> None:
    """The thread: become the qcluster's standby, then watch the lease for as long as the process lives."""
    while (held := _take_role(role)) is None:
        time.sleep(ROLE_RETRY)
    logger.info("dispatcher standby running in worker %s (role %s held by %s)", os.getpid(), role[1:], held.fileno())
    failing = False
    while True:
        time.sleep(POLL * random.uniform(0.8, 1.2))  # standbys of several qclusters do not read in step
        try:
            take_over_if_vacant()
            failing = False
        except (DatabaseError, InterfaceError):
            if not failing:  # once per outage, not twice a second
                logger.warning("dispatcher standby: the database is not reachable; trying again", exc_info=True)
            failing = True
            connection.close()
        except Exception:
            logger.exception("dispatcher standby: unexpected error; trying again")
            connection.close()


def take_over_if_vacant(**dispatcher_options: Any) -> str:
    """One look at the lease: when it is free or expired, take it (compare-and-swap) and run a dispatcher under it
    here. Returns how the run ended, or "" when the lease was live or another standby won it."""
    from overrides.polling.dispatcher import Dispatcher
    from overrides.polling.lease import DispatcherLease

    lease = DispatcherLease()
    if lease.holder() or not lease.acquire(wait_seconds=0, as_successor=False):
        return ""
    logger.info("dispatcher standby %s took the vacant lease", lease.token)
    report = Dispatcher(lease=lease, **dispatcher_options).run()
    logger.debug("standby's dispatcher run ended (%s): %s", report.ended, report.summary())
    return report.ended
