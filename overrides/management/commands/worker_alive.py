"""The worker pod's liveness probe: exit 1 (one line saying why) when this host's qcluster stopped reporting or
the dispatcher lease this host holds has not been renewed in time; exit 0 otherwise.

django-q2 has no liveness check of its own. Its sentinel saves a status (`Stat`) to the broker about every half
second, kept for 3 s (Redis; with the ORM broker in the `qcluster-status` file cache, see `portal/settings.py`):
no fresh status from a running cluster on this host means the qcluster hangs or died. The dispatcher lease
(`overrides.polling.lease.LEASE`) names its holder `<host>:<pid>:<id>`; a holder on this host whose lease
expired more than `--lease-grace` seconds ago is a dispatcher chain that neither renews nor hands over, which the
minute watchdog should have replaced long before.

An unreachable broker or database says nothing about this process: the probe then passes and says what it could
not check (a restart would not bring them back; `/readyz` of the web pods reports them).
"""

from __future__ import annotations

import socket
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import DatabaseError
from django.utils import timezone


class Unchecked(Exception):
    """A dependency the probe reads (broker, database) did not answer."""


def qcluster_problem(host: str) -> str:
    """'' when a qcluster on `host` reported a running status within the last few seconds."""
    from django_q.conf import Conf
    from django_q.status import Stat

    try:
        stats = [s for s in Stat.get_all() if s.host == host]
    except Exception as exc:  # noqa: BLE001 - a broker client raises many kinds
        raise Unchecked(f"the broker did not answer ({type(exc).__name__})") from None
    if not stats:
        return f"no qcluster on {host} reported its status in the last 3 s"
    if not any(s.status in (Conf.STARTING, Conf.WORKING, Conf.IDLE) for s in stats):
        return f"the qcluster on {host} is {stats[0].status}"
    return ""


def lease_problem(host: str, grace: timedelta) -> str:
    """'' unless `host` holds the dispatcher lease and let it expire more than `grace` ago."""
    from overrides.models import Lease
    from overrides.polling.lease import LEASE

    try:
        row = Lease.objects.filter(name=LEASE).values("holder", "expires_at").first()
    except DatabaseError as exc:
        raise Unchecked(f"the database did not answer ({type(exc).__name__})") from None
    if not row or not row["holder"].startswith(f"{host}:"):
        return ""
    overdue = timezone.now() - row["expires_at"]
    if overdue > grace:
        return (f"the dispatcher lease held by {row['holder']} was not renewed for "
                f"{overdue.total_seconds():.0f} s (expired at {row['expires_at']:%Y-%m-%d %H:%M:%S} UTC)")
    return ""


class Command(BaseCommand):
    help = "Liveness of this host's worker: its qcluster reports, and a dispatcher lease it holds is renewed."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=socket.gethostname(), help="the worker's host name (the pod's)")
        parser.add_argument("--lease-grace", type=float, default=120.0,
                            help="seconds past its expiry a lease held by this host may stay unrenewed")

    def handle(self, *args, host: str, lease_grace: float, **options):
        try:
            problem = qcluster_problem(host) or lease_problem(host, timedelta(seconds=lease_grace))
        except Unchecked as exc:
            self.stdout.write(f"worker on {host} not checked: {exc}")
            return
        if problem:
            self.stderr.write(f"worker not alive: {problem}")
            sys.exit(1)
        self.stdout.write(f"worker alive on {host}")
