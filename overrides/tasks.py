"""django-q2 entry points: thin functions taking primary keys, and the after-commit enqueue helpers.

Tasks load the row as it is when they run (level-triggered), so a task that runs late, twice or after a
newer one still converges on the current desired state.
"""

from django.db import transaction
from django_q.tasks import async_task


def _enqueue_after_commit(func: str, *args, group: str) -> None:
    transaction.on_commit(lambda: async_task(func, *args, group=group))


def enqueue_apply(obj) -> None:
    """Make the cluster's custom resource match this row, after the transaction that changed it commits."""
    from overrides.models import ModulePullOverride

    func = "overrides.tasks.apply_override" if isinstance(obj, ModulePullOverride) else "overrides.tasks.apply_source"
    _enqueue_after_commit(func, obj.pk, group="apply")


def enqueue_check(override_pk: int) -> None:
    """Check an override's registry digest now (renew, new tag), after commit."""
    _enqueue_after_commit("overrides.tasks.check_override", override_pk, group="check")


def enqueue_discovery(source_pk: int) -> None:
    _enqueue_after_commit("overrides.tasks.discover_source", source_pk, group="discovery")


def apply_override(pk: int) -> None:
    from overrides import sync

    sync.apply_override(pk)


def apply_source(pk: int) -> None:
    from overrides import sync

    sync.apply_source(pk)


def check_override(pk: int) -> str | None:
    """Check an override that was made due now (renew, new tag, webhook). It claims the row like the dispatcher,
    so whichever of the two comes first checks it and the other does nothing."""
    from overrides import polling

    return polling.check_override(pk, only_if_due=True)


def discover_source(pk: int) -> str | None:
    from overrides import polling

    return polling.discover_source(pk, only_if_due=True)


def run_dispatcher(successor: bool = False) -> dict:
    """The poller's dispatcher (started by the watchdog Schedule, then by itself: see overrides.dispatcher)."""
    from overrides import dispatcher

    return dispatcher.run_dispatcher(successor=successor)


def check_claimed(pk: int, until: str) -> str | None:
    """One check the dispatcher claimed (its "tasks" mode, kept to compare with the in-worker pool)."""
    from overrides import polling

    return polling.check_claimed(pk, until)


def read_back_cluster() -> list[str]:
    """Mirror the cluster into the portal once (status, imports, changes and deletions made in the cluster)."""
    from overrides import readback

    return readback.read_back().lines()
