"""Work handed to django-q2 after the transaction that asked for it commits.

The broker only carries "look at row N now": each task reads the row as it is when it runs, and the dispatcher's
level-triggered sweeps pick up any row whose task was lost. The dotted paths name `overrides.tasks` entry points.
"""

from django.db import transaction
from django_q.tasks import async_task

from overrides.models import ModulePullOverride
from overrides.polling.lease import dispatcher_running


def _enqueue_after_commit(func: str, *args, group: str) -> None:
    # robust: a broker outage after the commit is logged, not a 500 for a change that is saved (the sweeps enqueue it)
    transaction.on_commit(lambda: async_task(func, *args, group=group), robust=True)


def enqueue_apply(obj) -> None:
    """Make the cluster's custom resource match this row, after the transaction that changed it commits."""
    func = "overrides.tasks.apply_override" if isinstance(obj, ModulePullOverride) else "overrides.tasks.apply_source"
    _enqueue_after_commit(func, obj.pk, group="apply")


def enqueue_checks(override_pks: list[int]) -> None:
    """Check overrides' registry digests now (renew, new tag, a registry push), after commit; the rows are due now
    already, so a running dispatcher checks them within a tick and no task is enqueued then (one look at the lease
    for them all)."""
    def check() -> None:
        if not dispatcher_running():
            for pk in override_pks:
                async_task("overrides.tasks.check_override", pk, group="check")

    transaction.on_commit(check, robust=True)


def enqueue_check(override_pk: int) -> None:
    enqueue_checks([override_pk])


def enqueue_discovery(source_pk: int) -> None:
    _enqueue_after_commit("overrides.tasks.discover_source", source_pk, group="discovery")


# Task groups whose outcome is written on their own rows (sync state, registry view, deliveries, the audit trail):
# django-q2 stores no success record for them, which would cost its monitor a few queries per task and nobody reads.
# Failures are still stored, and so are the dispatcher's and the read-back's successes (the dispatcher reads them).
UNRECORDED_SUCCESS_GROUPS = frozenset({"apply", "check", "discovery", "notify", "expiry"})


def skip_success_records(sender, task: dict, **kwargs) -> None:
    """django-q2 `pre_enqueue`: no success record for the groups in `UNRECORDED_SUCCESS_GROUPS`."""
    if task.get("group") in UNRECORDED_SUCCESS_GROUPS and "save" not in task:
        task["save"] = False
