"""The dispatcher driven in-process with 1-2 s scan intervals against the real test registry.

Assertions are about behaviour, never about timing windows: checks go on at the interval (more than one each),
none is doubled (never two in one slot, never more than the slots of the window), the registry saw exactly the
checks the dispatchers recorded, and what was recorded. Lateness figures belong to bench/poller.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from overrides import services
from overrides.models import DigestObservation, ModulePullOverride, ModuleSource
from overrides.polling import checks as polling
from overrides.polling.lease import DispatcherLease
from overrides.polling.watchdog import ensure_schedules
from tests.fixtures.jobs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_registry_timeouts(settings):
    settings.REGISTRY_CONNECT_TIMEOUT = 0.5
    settings.REGISTRY_READ_TIMEOUT = 1.0


def _source(actor, repo, name="src"):
    return services.source_create(actor=actor, name=name, repo=repo, scheme="HTTP")


def _overrides(actor, source, names, interval="1s", tag="main", start_in=0.3):
    made = [services.override_create(actor=actor, name=n, source=source, image_tag=tag, scan_interval=interval)
            for n in names]
    # A common, known first due time, so the number of due slots in the window is exact.
    first = timezone.now() + timedelta(seconds=start_in)
    ModulePullOverride.objects.filter(pk__in=[o.pk for o in made]).update(next_check_at=first)
    return made


def _never_doubled(times: list[float], interval: float = 1.0) -> bool:
    """No two checks of one override in one slot: consecutive checks at least half an interval apart."""
    return all(later - earlier > interval / 2 for earlier, later in zip(times, times[1:], strict=False))


def _proxied_source(actor, counting_proxy, registry, modules, tag="main"):
    for module in modules:
        registry.push(module, tag, f"{module} v1")
    return _source(actor, counting_proxy.repo, name=registry.unique("src"))


def test_cadence_one_check_per_interval(start_dispatcher, counting_proxy, registry, actor):
    modules = [registry.unique("cad") for _ in range(5)]
    source = _proxied_source(actor, counting_proxy, registry, modules)
    made = _overrides(actor, source, modules, interval="1s")
    # Due at 0.3, 1.3, 2.3, 3.3 s; claiming stops at 3.6 s and claims 1 s ahead, so 4.3 s is checked too: five
    # slots. A machine too loaded to claim one in time skips it (no burst to catch up), and never doubles one.
    report = start_dispatcher(max_run=3.6).join()
    for override, module in zip(made, modules, strict=True):
        checks = report.per_override[override.pk]
        assert 2 <= checks <= 5  # it goes on at its interval, at most once per slot
        times = counting_proxy.times(f"/{module}/manifests/main")
        assert len(times) == checks and _never_doubled(times), times
    assert DigestObservation.objects.filter(override__in=made).count() == 5  # the first digest, once each


def test_two_dispatchers_never_check_an_override_twice(start_dispatcher, counting_proxy, registry, actor):
    modules = [registry.unique("dup") for _ in range(20)]
    source = _proxied_source(actor, counting_proxy, registry, modules)
    made = _overrides(actor, source, modules, interval="1s")
    # No lease: both claim concurrently; only the compare-and-swap keeps them apart.
    first, second = start_dispatcher(max_run=3.6, tick=0.05), start_dispatcher(max_run=3.6, tick=0.05)
    reports = [first.join(), second.join()]
    for override, module in zip(made, modules, strict=True):
        checks = sum(r.per_override[override.pk] for r in reports)
        # Both went on checking, at most once per slot between them, and the registry saw exactly the checks the
        # dispatchers recorded.
        assert 2 <= checks <= 5
        times = counting_proxy.times(f"/{module}/manifests/main")
        assert len(times) == checks and _never_doubled(times), times
    assert DigestObservation.objects.filter(override__in=made).count() == 20


def test_the_lease_keeps_one_dispatcher_and_hands_over_to_a_successor(start_dispatcher, counting_proxy, registry,
                                                                      actor):
    ensure_schedules()
    modules = [registry.unique("lease") for _ in range(3)]
    source = _proxied_source(actor, counting_proxy, registry, modules)
    made = _overrides(actor, source, modules, interval="1s")
    holder = start_dispatcher(lease=DispatcherLease(), max_run=8)
    wait_for(lambda: DispatcherLease().holder() == holder.dispatcher.lease.token, what="the first holder")
    # The watchdog's run finds a live holder and leaves at once.
    assert start_dispatcher(lease=DispatcherLease(), successor=False).join().ended == "not needed"
    # A chained successor takes over; the first one stops claiming and finishes what it claimed.
    wait_for(lambda: sum(ModulePullOverride.objects.filter(registry_checked_at__isnull=False).values_list(
        "check_failures", flat=True)) == 0 and ModulePullOverride.objects.filter(registry_digest="").count() == 0,
        what="first checks")
    successor = start_dispatcher(lease=DispatcherLease(), successor=True, max_run=2.5)
    first_report = holder.join()
    assert first_report.ended == "handover"
    second_report = successor.join()
    assert second_report.ended == "deadline" and second_report.checks > 0
    for override, module in zip(made, modules, strict=True):
        # The successor went on checking every override, and the handover doubled none.
        times = counting_proxy.times(f"/{module}/manifests/main")
        assert second_report.per_override[override.pk] >= 1 and _never_doubled(times), times
        assert first_report.per_override[override.pk] + second_report.per_override[override.pk] == len(times)
    assert DispatcherLease().holder() == ""  # released at the deadline


def test_the_watchdog_takes_over_from_a_dead_holder(start_dispatcher):
    ensure_schedules()
    dead = DispatcherLease(ttl=timedelta(seconds=1))
    assert dead.acquire(wait_seconds=0, as_successor=False)  # and then its worker died: no more heartbeats
    report = start_dispatcher(lease=DispatcherLease(), successor=False, max_run=3).join()
    assert report.ended == "deadline"  # it waited for the lease to expire, held it, and released it
    assert DispatcherLease().holder() == ""


def test_the_standby_takes_a_vacant_lease_and_leaves_a_live_one(start_dispatcher):
    from overrides.polling import standby

    ensure_schedules()
    holder = start_dispatcher(lease=DispatcherLease(), max_run=1.5)
    wait_for(lambda: DispatcherLease().holder() == holder.dispatcher.lease.token, what="the holder")
    assert standby.take_over_if_vacant() == ""  # a live holder: the standby only watches
    holder.join()
    dead = DispatcherLease(ttl=timedelta(seconds=0.5))
    assert dead.acquire(wait_seconds=0, as_successor=False)  # and then its qcluster was killed
    wait_for(lambda: DispatcherLease().holder() == "", what="the lease to expire")
    # The standby takes it over (compare-and-swap) and dispatches under it, here until its deadline.
    assert standby.take_over_if_vacant(max_run=0.5, run_for=None) == "deadline"
    assert DispatcherLease().holder() == ""


def test_one_standby_per_qcluster_and_its_role_passes_on_when_its_worker_dies():
    from overrides.polling import standby

    role = f"\0mpo-portal-test-standby-{timezone.now().timestamp()}"
    first = standby._take_role(role)
    assert first is not None and standby._take_role(role) is None  # a sibling worker waits
    first.close()  # the standby's worker exited: the kernel frees the role
    second = standby._take_role(role)
    assert second is not None
    second.close()


def _in_thread(call):
    """Run `call` in a thread with its own database connection; `.result()` waits for it and returns its result."""
    import threading

    from django.db import connection

    box = {}

    def target():
        try:
            box["result"] = call()
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.result = lambda: (thread.join(10), box.get("result"))[1]
    return thread


def test_the_lease_compare_and_swap_one_holder_handover_and_replaced_successor(monkeypatch):
    import threading

    from overrides.models import Lease

    contenders = [DispatcherLease() for _ in range(6)]
    all_read = threading.Barrier(len(contenders))
    read = DispatcherLease._read

    def read_then_wait(self):
        row = read(self)
        if self in contenders and not getattr(self, "raced", False):
            self.raced = True
            all_read.wait(10)  # every contender has seen the lease free before any of them tries to take it
        return row

    monkeypatch.setattr(DispatcherLease, "_read", read_then_wait)
    racing = [_in_thread(lambda lease=lease: lease.acquire(wait_seconds=0, as_successor=False))
              for lease in contenders]
    assert sorted(t.result() for t in racing) == [False] * 5 + [True]  # a free lease goes to exactly one
    [holder] = [lease for lease in contenders if DispatcherLease().holder() == lease.token]
    assert holder.renew({"n": 1}) == "held"

    first, second = DispatcherLease(), DispatcherLease()
    waiting = _in_thread(lambda: first.acquire(wait_seconds=5, as_successor=True))
    wait_for(lambda: Lease.objects.get().successor == first.token, what="the first successor")
    replacing = _in_thread(lambda: second.acquire(wait_seconds=5, as_successor=True))
    assert waiting.result() is False  # a newer successor took its place
    wait_for(lambda: Lease.objects.get().successor == second.token, what="the second successor")
    assert DispatcherLease().holder() == holder.token  # still the holder's until it hands over
    assert holder.renew({"n": 2}) == "handover"
    assert replacing.result() is True and second.state == {"n": 2}
    assert DispatcherLease().holder() == second.token
    assert holder.renew({"n": 3}) == "lost"
    second.release({"n": 4})
    assert DispatcherLease().holder() == "" and Lease.objects.get().state == {"n": 4}


def test_a_lost_claim_is_due_again_one_interval_later(start_dispatcher, registry, actor):
    module = registry.unique("lost")
    registry.push(module, "main", "v1")
    source = _source(actor, f"{registry.repo}", name=registry.unique("src"))
    [override] = _overrides(actor, source, [module], interval="2s", start_in=0)
    [claim] = polling.claim_checks()  # a worker claimed it and died before checking
    assert claim.until == claim.due + timedelta(seconds=2)
    report = start_dispatcher(max_run=2.5).join()
    assert report.per_override[override.pk] >= 1
    assert ModulePullOverride.objects.get(pk=override.pk).registry_digest


def test_renew_is_checked_at_once_by_the_running_dispatcher(start_dispatcher, registry, actor):
    module = registry.unique("renew")
    registry.push(module, "main", "v1")
    source = _source(actor, registry.repo, name=registry.unique("src"))
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main",
                                        scan_interval="1h")
    thread = start_dispatcher(max_run=4, tick=0.05)
    wait_for(lambda: DigestObservation.objects.filter(override=override).exists(), what="first check")
    second = registry.push(module, "main", "v2")
    services.override_renew(actor=actor, override=override)
    wait_for(lambda: ModulePullOverride.objects.get(pk=override.pk).registry_digest == second, timeout=3,
             what="the renew check")
    report = thread.join()
    assert report.per_override[override.pk] == 2  # the first check and the renew: nothing else in an hour
    assert DigestObservation.objects.filter(override=override).count() == 2


def test_a_dead_registry_backs_off_without_delaying_other_registries(start_dispatcher, counting_proxy, registry,
                                                                     hanging_server, actor, fast_registry_timeouts):
    dead_source = _source(actor, hanging_server.repo, name="dead")
    dead = _overrides(actor, dead_source, [f"dead-{i}" for i in range(30)])
    healthy_modules = [registry.unique("ok") for _ in range(3)]
    healthy = _overrides(actor, _proxied_source(actor, counting_proxy, registry, healthy_modules), healthy_modules)
    ModulePullOverride.objects.update(next_check_at=timezone.now() + timedelta(seconds=0.3))
    report = start_dispatcher(max_run=3.6, threads=6, host_cap=2).join()
    for override, module in zip(healthy, healthy_modules, strict=True):
        # Queued behind the dead host's hanging checks they would get one or two; on their own threads they keep
        # their interval (five slots, a loaded machine may skip one).
        checks = report.per_override[override.pk]
        assert checks >= 3, "a dead registry must not delay the others"
        assert counting_proxy.count(f"/{module}/manifests/main") == checks
    # The dead host was tried by a handful of checks; the rest of its overrides wait for its retry time.
    attempted = sum(report.per_override[o.pk] for o in dead)
    assert 1 <= attempted <= 6
    assert report.deferred >= 20
    rows = ModulePullOverride.objects.filter(pk__in=[o.pk for o in dead])
    assert all(hanging_server.host in row.registry_error for row in rows)
    assert all(row.next_check_at > timezone.now() for row in rows)


def test_registry_outage_errors_then_recovery_clears_them(start_dispatcher, registry_factory, actor):
    private = registry_factory()
    module = "echo"
    private.push(module, "main", "v1")
    source = _source(actor, private.repo, name="private")
    [override] = _overrides(actor, source, [module], interval="1s")
    start_dispatcher(max_run=1.0).join()
    assert ModulePullOverride.objects.get(pk=override.pk).registry_digest
    private.stop()
    start_dispatcher(max_run=1.5).join()
    row = ModulePullOverride.objects.get(pk=override.pk)
    assert row.check_failures >= 1 and private.host in row.registry_error
    private.start()
    second = private.push(module, "main", "v2")
    ModulePullOverride.objects.filter(pk=override.pk).update(next_check_at=timezone.now())  # skip the backoff
    start_dispatcher(max_run=1.0).join()
    row = ModulePullOverride.objects.get(pk=override.pk)
    assert (row.check_failures, row.registry_error, row.registry_digest) == (0, "", second)
    assert DigestObservation.objects.filter(override=override).count() == 2


def test_discovery_runs_when_due_and_keeps_the_list_on_failure(start_dispatcher, registry_factory, actor):
    private = registry_factory()
    private.publish_module("alpha")
    source = _source(actor, private.repo, name="private")  # created: discovery due at once
    start_dispatcher(max_run=0.5).join()
    source.refresh_from_db()
    assert source.discovered_modules == ["alpha"] and source.discovery_error == ""
    private.stop()
    ModuleSource.objects.filter(pk=source.pk).update(next_discovery_at=timezone.now())
    start_dispatcher(max_run=0.5).join()
    source.refresh_from_db()
    assert source.discovered_modules == ["alpha"] and private.host in source.discovery_error


def test_cluster_loops_are_dispatched_only_when_sync_is_on(start_dispatcher, cluster_settings, make_source, actor):
    from django_q.models import OrmQ

    source = make_source(name="dev", repo="registry.example.com/deckhouse/modules")
    override = services.override_create(actor=actor, name="echo", source=source, image_tag="main")
    OrmQ.objects.all().delete()  # forget what the services enqueued: the dispatcher's sweep must find the rows
    lost = timezone.now() - timedelta(seconds=1)  # ... once the after-commit apply tasks' grace has passed
    ModulePullOverride.objects.filter(pk=override.pk).update(next_sync_at=lost)
    ModuleSource.objects.filter(pk=source.pk).update(next_sync_at=lost)
    ModulePullOverride.objects.filter(pk=override.pk).update(next_check_at=timezone.now() + timedelta(hours=1))
    ModuleSource.objects.filter(pk=source.pk).update(next_discovery_at=timezone.now() + timedelta(hours=1))
    ensure_schedules()
    start_dispatcher(lease=DispatcherLease(), max_run=0.5).join()
    def cluster_tasks():  # (the sweep also fans out the override's "created" event: not this test's business)
        return sorted((q.task["func"], q.task["args"]) for q in OrmQ.objects.all()
                      if q.task["func"] != "overrides.tasks.fan_out_notifications")

    assert cluster_tasks() == [("overrides.tasks.apply_override", (override.pk,)),
                               ("overrides.tasks.apply_source", (source.pk,)),
                               ("overrides.tasks.read_back_cluster", ())]
    # The next holder gets the read-back's schedule with the lease, and the applies are claimed for a while.
    start_dispatcher(lease=DispatcherLease(), max_run=0.5).join()
    assert len(cluster_tasks()) == 3


def test_cluster_loops_stay_quiet_with_sync_off(start_dispatcher, make_source, actor):
    from django_q.models import OrmQ

    source = make_source(name="dev", repo="registry.example.com/deckhouse/modules")
    OrmQ.objects.all().delete()
    ModuleSource.objects.filter(pk=source.pk).update(next_discovery_at=timezone.now() + timedelta(hours=1))
    start_dispatcher(max_run=0.5).join()
    assert not OrmQ.objects.exists()


@pytest.mark.parametrize("low_result", ["same", "changed"])  # changed: written after the unchanged rows' UPDATE
def test_a_claim_and_a_write_of_results_over_the_same_rows_wait_for_each_other(make_source, actor, low_result):
    """Seen on PostgreSQL with two dispatchers: a claim (row locks in id order) and a write of results (locks in the
    order the checks finished) over the same rows deadlocked; PostgreSQL aborted the write and the checks it held
    were made but never recorded. Every writer now locks in id order, so here the write waits for the claim."""
    import time

    from django.db import transaction

    from registry.errors import DigestLookup

    source = make_source(name="dev", repo="registry.example.com/deckhouse/modules")
    low, high = (services.override_create(actor=actor, name=n, source=source, image_tag="main") for n in ("a", "b"))
    ModulePullOverride.objects.update(registry_digest="sha256:" + "a" * 64, next_check_at=timezone.now())
    claims = {c.pk: c for c in polling.claim_checks()}
    finished = [claims[high.pk], claims[low.pk]]  # the higher id finished first

    digests = {high.pk: claims[high.pk].digest,
               low.pk: claims[low.pk].digest if low_result == "same" else "sha256:" + "b" * 64}

    def write_results():
        with transaction.atomic():
            return polling.record_checks([(c, DigestLookup("ref", digests[c.pk]), timezone.now()) for c in finished])

    later = timezone.now() + timedelta(minutes=5)
    with transaction.atomic():  # a claim of the next slots: the low row first, then the high one
        ModulePullOverride.objects.filter(pk=low.pk).update(next_check_at=later)
        writer = _in_thread(write_results)
        time.sleep(0.5)  # the write has begun and waits for a row the claim holds
        ModulePullOverride.objects.filter(pk=high.pk).update(next_check_at=later)
    assert writer.result() == ["same", low_result]
    assert ModulePullOverride.objects.filter(next_check_at=later, registry_checked_at__isnull=False).count() == 2
