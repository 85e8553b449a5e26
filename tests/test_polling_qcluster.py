"""The poller under a real `manage.py qcluster` (subprocess on the test database) against the real test registry.

Checks are counted at a proxy in front of the registry, independently of what the portal records.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.models import DigestObservation, ModulePullOverride
from tests.fixtures.jobs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(actor, registry, counting_proxy, count, interval):
    modules = [registry.unique("q") for _ in range(count)]
    for module in modules:
        registry.push(module, "main", f"{module} v1")
    source = services.source_create(actor=actor, name=registry.unique("src"), repo=counting_proxy.repo,
                                    scheme="HTTP")
    made = [services.override_create(actor=actor, name=m, source=source, image_tag="main", scan_interval=interval)
            for m in modules]
    return modules, made


def _assert_cadence(counting_proxy, module, start, end, interval):
    """Checks of `module` in [start, end): as many as due slots fit (whatever their phase), never two close
    together (a double check would be a gap near zero)."""
    times = [t for t in counting_proxy.times(f"/{module}/manifests/main") if start <= t < end]
    slots = (end - start) / interval
    assert int(slots) <= len(times) <= int(slots) + 1, times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(abs(gap - interval) < interval / 2 for gap in gaps), gaps


def _first_digests_then_cadence(counting_proxy, modules, made, seconds: float, interval: float = 2.0) -> None:
    """Once every override has its first digest, `seconds` of checks of each module on cadence."""
    wait_for(lambda: DigestObservation.objects.filter(override__in=made).count() == len(made), timeout=20,
             what="first digests")
    start = time.time()
    time.sleep(seconds)
    for module in modules:
        _assert_cadence(counting_proxy, module, start, start + seconds, interval)


def test_qcluster_checks_on_cadence_and_records_each_change_once(qcluster, counting_proxy, registry, actor):
    modules, made = _setup(actor, registry, counting_proxy, count=4, interval="2s")
    _first_digests_then_cadence(counting_proxy, modules, made, seconds=6.5)

    changed = registry.push(modules[0], "main", "v2")
    wait_for(lambda: ModulePullOverride.objects.get(pk=made[0].pk).registry_digest == changed, timeout=5,
             what="the change")
    time.sleep(2.5)  # more checks of the same digest add nothing
    assert [o.digest for o in DigestObservation.objects.filter(override=made[0]).order_by("id")][-1] == changed
    assert DigestObservation.objects.filter(override=made[0]).count() == 2


def test_two_qclusters_never_check_an_override_twice(qcluster_factory, counting_proxy, registry, actor):
    modules, made = _setup(actor, registry, counting_proxy, count=6, interval="2s")
    qcluster_factory(workers=2)
    qcluster_factory(workers=2)
    _first_digests_then_cadence(counting_proxy, modules, made, seconds=6.5)
    assert DigestObservation.objects.filter(override__in=made).count() == 6


def test_renew_under_qcluster_checks_at_once(qcluster, registry, actor):
    module = registry.unique("renew")
    registry.push(module, "main", "v1")
    source = services.source_create(actor=actor, name=registry.unique("src"), repo=registry.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main",
                                        scan_interval="1h")
    wait_for(lambda: ModulePullOverride.objects.get(pk=override.pk).registry_digest, timeout=20, what="first check")
    changed = registry.push(module, "main", "v2")
    services.override_renew(actor=actor, override=override)
    wait_for(lambda: ModulePullOverride.objects.get(pk=override.pk).registry_digest == changed, timeout=5,
             what="the renew check")
    row = ModulePullOverride.objects.get(pk=override.pk)
    assert row.next_check_at > timezone.now() + timedelta(minutes=59)
    assert DigestObservation.objects.filter(override=override).count() == 2


def test_the_standby_dispatches_when_no_dispatcher_was_started(qcluster_factory, counting_proxy, registry, actor):
    """No dispatcher task enqueued and no watchdog Schedule: the qcluster's standby (started by django-q2's
    `post_spawn` in a worker) finds the lease vacant, takes it and dispatches, so checks go on at the interval."""
    from django_q.models import Schedule

    from overrides.polling.lease import DispatcherLease
    from tests.production.support import process_group

    modules, made = _setup(actor, registry, counting_proxy, count=2, interval="2s")
    Schedule.objects.all().delete()
    cluster = qcluster_factory(workers=2, dispatcher=False)
    holder = wait_for(lambda: DispatcherLease().holder(), timeout=20, what="a lease holder")
    pid = int(holder.split(":")[1])
    assert pid != cluster.process.pid and process_group(pid) == cluster.process.pid  # one of its workers
    _first_digests_then_cadence(counting_proxy, modules, made, seconds=4.5)
