"""Digest checks, claims, backoff and discovery against the real test registry (overrides/polling.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from overrides import services, tasks
from overrides.models import DigestObservation, ModulePullOverride, ModuleSource
from overrides.polling import cadence
from overrides.polling import checks as polling
from overrides.polling.circuits import HostCircuits
from registry.errors import ErrorKind, RegistryError

pytestmark = pytest.mark.django_db


@pytest.fixture
def pushed(registry, make_source):
    """A source on the test registry and a helper pushing `<module>:<tag>` there (returns the digest)."""
    repo = f"{registry.host}/{registry.unique('p')}/modules"
    source = make_source(name=registry.unique("src"), repo=repo, scheme="HTTP")

    def push(module: str, tag: str, content: str) -> str:
        return registry.push(module, tag, content, repo=repo)

    push.source = source
    push.repo = repo
    return push


def _override(pushed, actor, name="echo", tag="main", **kw):
    return services.override_create(actor=actor, name=name, source=pushed.source, image_tag=tag, **kw)


def _observations(override):
    return list(DigestObservation.objects.filter(override=override).order_by("id"))


def _row(override):
    return ModulePullOverride.objects.get(pk=override.pk)


# --- scheduling arithmetic -----------------------------------------------------------------------------------------


def test_next_due_keeps_the_phase_and_skips_missed_slots():
    due = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    step = timedelta(seconds=15)
    assert cadence.next_due(due, step, due + timedelta(seconds=1)) == due + step
    # An outage of a minute: the next slot on the same phase after now, not a burst of the missed ones.
    assert cadence.next_due(due, step, due + timedelta(seconds=61)) == due + timedelta(seconds=75)
    assert cadence.next_due(due, step, due + timedelta(seconds=60)) == due + timedelta(seconds=75)


def test_failure_delay_doubles_caps_and_honours_retry_after():
    now = timezone.now()
    step = timedelta(seconds=15)
    assert [cadence.failure_delay(step, n, None, now).total_seconds() for n in (1, 2, 3, 4, 5, 6, 12)] == [
        15, 30, 60, 120, 240, 300, 300]
    assert cadence.failure_delay(step, 1, now + timedelta(seconds=120), now) == timedelta(seconds=120)
    assert cadence.failure_delay(timedelta(hours=2), 3, None, now) == timedelta(hours=2)  # never below interval


def test_backoff_cap_is_the_setting_of_the_moment(settings):
    settings.PORTAL_POLL_BACKOFF_CAP = 60
    now = timezone.now()
    assert cadence.failure_delay(timedelta(seconds=15), 12, None, now) == timedelta(seconds=60)
    circuits = HostCircuits()
    for _ in range(12):
        circuits.record("r.example.com", RegistryError(ErrorKind.TIMEOUT, "timed out"), now)
    assert circuits.hosts["r.example.com"].open_until == now + timedelta(seconds=60)


# --- digests ------------------------------------------------------------------------------------------------------


def test_first_digest_and_each_change_are_recorded_once(pushed, actor):
    first = pushed("echo", "main", "v1")
    override = _override(pushed, actor)
    assert polling.check_override(override.pk) == "first"
    row = _row(override)
    assert row.registry_digest == first and row.registry_error == "" and row.registry_checked_at is not None
    assert polling.check_override(override.pk) == "same"
    [seen] = _observations(override)
    assert (seen.digest, seen.previous_digest, seen.origin) == (first, "", "registry")
    assert seen.image_ref == f"{pushed.repo}/echo:main"

    second = pushed("echo", "main", "v2")
    assert polling.check_override(override.pk) == "changed"
    assert polling.check_override(override.pk) == "same"
    observations = _observations(override)
    assert [(o.digest, o.previous_digest) for o in observations] == [(first, ""), (second, first)]


def test_two_checks_of_one_change_record_it_once(pushed, actor):
    """Two workers that both saw the old digest and both read the new one: the compare-and-swap lets one in."""
    pushed("echo", "main", "v1")
    override = _override(pushed, actor)
    polling.check_override(override.pk)
    pushed("echo", "main", "v2")
    source = ModuleSource.objects.get(pk=pushed.source.pk)
    claims = [polling.claim_override(override.pk, only_if_due=False) for _ in range(2)]
    results = [polling.lookup(c, source) for c in claims]
    outcomes = sorted(polling.record_check(c, r) for c, r in zip(claims, results, strict=True))
    assert outcomes == ["changed", "same"]
    assert len(_observations(override)) == 2


def test_result_for_a_replaced_tag_is_dropped(pushed, actor):
    pushed("echo", "main", "v1")
    override = _override(pushed, actor)
    claim = polling.claim_override(override.pk, only_if_due=False)
    result = polling.lookup(claim, pushed.source)
    services.override_update(actor=actor, override=override, image_tag="other")
    assert polling.record_check(claim, result) == "stale"
    assert _row(override).registry_digest == "" and not _observations(override)


# --- claims -------------------------------------------------------------------------------------------------------


def test_a_due_override_is_claimed_once_and_moved_one_interval_from_its_due_time(pushed, actor):
    override = _override(pushed, actor, scan_interval="20s")
    due = timezone.now() - timedelta(seconds=3)
    ModulePullOverride.objects.filter(pk=override.pk).update(next_check_at=due)
    [claim] = [c for c in polling.claim_checks() if c.pk == override.pk]
    assert claim.due == due and claim.until == due + timedelta(seconds=20)
    assert _row(override).next_check_at == due + timedelta(seconds=20)
    assert not [c for c in polling.claim_checks() if c.pk == override.pk]
    assert polling.claim_override(override.pk, only_if_due=True) is None


def test_horizon_claims_checks_due_soon(pushed, actor):
    override = _override(pushed, actor)
    soon = timezone.now() + timedelta(milliseconds=600)
    ModulePullOverride.objects.filter(pk=override.pk).update(next_check_at=soon)
    assert not polling.claim_checks(horizon=timedelta(0))
    assert [c.due for c in polling.claim_checks(horizon=timedelta(seconds=1))] == [soon]


def test_deleted_overrides_are_not_claimed(pushed, actor):
    override = _override(pushed, actor)
    services.override_delete(actor=actor, override=override)
    ModulePullOverride.all_objects.filter(pk=override.pk).update(next_check_at=timezone.now())
    assert not polling.claim_checks()
    assert polling.check_override(override.pk) is None


def test_renew_makes_the_task_check_at_once_and_only_once(pushed, actor):
    pushed("echo", "main", "v1")
    override = _override(pushed, actor, scan_interval="1h")
    assert tasks.check_override(override.pk) == "first"  # created: due at once
    assert tasks.check_override(override.pk) is None  # not due again for an hour
    services.override_renew(actor=actor, override=override)
    assert tasks.check_override(override.pk) == "same"
    assert tasks.check_override(override.pk) is None
    assert _row(override).next_check_at > timezone.now() + timedelta(minutes=59)


def test_request_checks_makes_overrides_due(pushed, actor):
    override = _override(pushed, actor, scan_interval="1h")
    polling.check_override(override.pk)
    assert polling.request_checks([override.pk, 999999]) == 1
    assert _row(override).next_check_at <= timezone.now()


# --- failures -----------------------------------------------------------------------------------------------------


def test_failures_back_off_and_a_success_clears_them(pushed, actor):
    pushed("echo", "main", "v0")
    override = _override(pushed, actor, tag="not-yet", scan_interval="10s")
    assert polling.check_override(override.pk) == "failed"
    row = _row(override)
    assert row.check_failures == 1 and 'no tag "not-yet"' in row.registry_error
    first_retry = row.next_check_at - row.registry_checked_at
    assert timedelta(seconds=9) <= first_retry <= timedelta(seconds=11)
    assert polling.check_override(override.pk) == "failed"
    row = _row(override)
    assert row.check_failures == 2
    assert row.next_check_at - row.registry_checked_at >= timedelta(seconds=19)

    digest = pushed("echo", "not-yet", "now")
    assert polling.check_override(override.pk) == "first"
    row = _row(override)
    assert (row.check_failures, row.registry_error, row.registry_digest) == (0, "", digest)


def test_retry_after_is_honoured(fault_proxy, make_source, actor, registry):
    module = registry.unique("ra")
    registry.push(module, "main", "x")
    source = make_source(name=registry.unique("src"), repo=fault_proxy.repo, scheme="HTTP")
    override = services.override_create(actor=actor, name=module, source=source, image_tag="main")
    fault_proxy.set_fault(429, retry_after="120")
    assert polling.check_override(override.pk) == "failed"
    row = _row(override)
    assert row.next_check_at - row.registry_checked_at >= timedelta(seconds=119)
    assert row.registry_error
    fault_proxy.clear()
    assert polling.check_override(override.pk) == "first"
    assert _row(override).registry_error == ""


# --- discovery ----------------------------------------------------------------------------------------------------


def test_discovery_lists_modules_and_keeps_the_last_list_on_failure(registry_factory, make_source):
    private = registry_factory()
    for name in ("alpha", "beta"):
        private.publish_module(name)
    source = make_source(name="private", repo=private.repo, scheme="HTTP")
    assert polling.discover_source(source.pk) == "ok"
    source.refresh_from_db()
    assert source.discovered_modules == ["alpha", "beta"] and source.discovery_error == ""
    assert source.next_discovery_at > timezone.now() + timedelta(minutes=2)
    with private.down():
        assert polling.discover_source(source.pk) == "failed"
        source.refresh_from_db()
        assert source.discovered_modules == ["alpha", "beta"]
        assert private.host in source.discovery_error
    assert polling.discover_source(source.pk, only_if_due=True) is None  # claimed for three minutes


# --- registry hosts (overrides/circuits.py) ---------------------------------------------------------------------------


def test_host_circuit_opens_on_host_failures_only_and_probes_once():
    circuits = HostCircuits()
    now = timezone.now()
    circuits.record("a:5000", RegistryError(ErrorKind.TAG_NOT_FOUND, "no tag", status=404), now)
    assert circuits.gate("a:5000", now) == "go"  # the host answered
    circuits.record("a:5000", RegistryError(ErrorKind.TIMEOUT, "no answer"), now)
    assert circuits.gate("a:5000", now + timedelta(seconds=1)) == "open"
    assert circuits.hosts["a:5000"].message == "no answer"
    assert circuits.gate("b:5000", now) == "go"  # other hosts go on
    later = now + timedelta(seconds=6)
    assert circuits.gate("a:5000", later) == "probe"
    assert circuits.gate("a:5000", later) == "wait"  # everyone else waits for the probe's answer
    circuits.record("a:5000", RegistryError(ErrorKind.CONNECTION_REFUSED, "refused"), later)
    assert circuits.hosts["a:5000"].open_until == later + timedelta(seconds=10)
    restored = HostCircuits.load(circuits.dump())
    assert restored.gate("a:5000", later) == "open"
    circuits.record("a:5000", None, later + timedelta(seconds=11))
    assert circuits.gate("a:5000", later + timedelta(seconds=11)) == "go"


def test_retry_after_opens_the_host_until_then():
    circuits = HostCircuits()
    now = timezone.now()
    circuits.record("hub", RegistryError(ErrorKind.RATE_LIMITED, "slow down", 429, now + timedelta(minutes=2)), now)
    assert circuits.gate("hub", now + timedelta(seconds=119)) == "open"
    assert circuits.gate("hub", now + timedelta(seconds=121)) == "probe"


def test_contended_bulk_claim_is_redone_row_by_row(pushed, actor, monkeypatch):
    made = [_override(pushed, actor, name=f"m{i}") for i in range(3)]
    due = timezone.now() - timedelta(seconds=1)
    ModulePullOverride.objects.update(next_check_at=due)
    bulk_attempts = []

    def contended(plans):
        bulk_attempts.append(len(plans))
        ModulePullOverride.objects.filter(pk=plans[0][0]).update(next_check_at=None)  # rolled back with the bulk
        raise polling._Contended  # as when another claimer took a row between our read and our update

    monkeypatch.setattr(polling, "_claim_rows", contended)
    claimed = polling.claim_checks()
    assert bulk_attempts == [3]
    assert sorted(c.pk for c in claimed) == sorted(o.pk for o in made)
    assert set(ModulePullOverride.objects.values_list("next_check_at", flat=True)) == {due + timedelta(seconds=15)}


# --- schedules ----------------------------------------------------------------------------------------------------


def _migration(name: str):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    module = __import__(f"overrides.migrations.{name}", fromlist=["Migration"])
    return module, MigrationExecutor(connection).loader.project_state(("overrides", name)).apps


def test_the_migrations_register_the_watchdog_and_the_lease_once():
    from django_q.models import Schedule

    from overrides.models import Lease
    from overrides.polling.lease import LEASE
    from overrides.polling.watchdog import DISPATCHER_TASK, WATCHDOG

    Schedule.objects.filter(name=WATCHDOG).delete()
    Lease.objects.all().delete()
    # What 0002 used to make besides the watchdog: the lease as a never-firing Schedule row.
    old, moved = _migration("0003_dispatcher_lease")
    Schedule.objects.create(name=old.OLD_LEASE_SCHEDULE, func=DISPATCHER_TASK, schedule_type=Schedule.ONCE,
                            repeats=0)
    register, state_apps = _migration("0002_poller_schedules")
    for _ in range(2):  # and again (ensure_schedules after a flush): still one of each
        register.register(state_apps, None)
        old.move_lease(moved, None)
    assert not Schedule.objects.filter(name=old.OLD_LEASE_SCHEDULE).exists()  # only the real schedule is left
    [watchdog] = Schedule.objects.filter(name=WATCHDOG)
    assert (watchdog.func, watchdog.schedule_type, watchdog.minutes, watchdog.repeats) == (
        DISPATCHER_TASK, Schedule.MINUTES, 1, -1)
    [lease] = Lease.objects.all()
    assert (lease.name, lease.holder, lease.successor, lease.state, lease.is_held) == (LEASE, "", "", {}, False)


def test_the_lease_row_is_made_on_first_use_and_shown_read_only_in_the_admin(client, admin_user):
    from django.urls import reverse

    from overrides.models import Lease
    from overrides.polling.lease import LEASE, DispatcherLease

    Lease.objects.all().delete()
    holder = DispatcherLease()
    assert holder.acquire(wait_seconds=0, as_successor=False)
    holder.release({"hosts": {}})
    lease = Lease.objects.get(name=LEASE)
    assert (lease.holder, lease.state) == ("", {"hosts": {}})
    client.force_login(admin_user)
    assert client.get(reverse("admin:overrides_lease_changelist")).status_code == 200
    assert client.get(reverse("admin:overrides_lease_change", args=[lease.pk])).status_code == 200
    assert client.post(reverse("admin:overrides_lease_change", args=[lease.pk]), {}).status_code == 403
    assert client.post(reverse("admin:overrides_lease_delete", args=[lease.pk]), {"post": "yes"}).status_code == 403
    assert Lease.objects.filter(name=LEASE).exists()


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection: no test transaction
def test_the_scheduler_starts_a_dispatcher_from_the_watchdog():
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Schedule
    from django_q.scheduler import scheduler

    from overrides.polling.watchdog import DISPATCHER_TASK, WATCHDOG, ensure_schedules

    ensure_schedules()
    Schedule.objects.filter(name=WATCHDOG).update(next_run=timezone.now() - timedelta(seconds=1))
    OrmQ.objects.all().delete()
    scheduler(broker=get_broker())
    assert [q.task["func"] for q in OrmQ.objects.all()] == [DISPATCHER_TASK]


def test_a_claim_after_missed_slots_is_one_check_near_the_next_slot(make_override):
    """After an outage the row is checked late at once, unless its next slot is under a second away: then only
    that slot's check is made (not a late one and an on-time one a moment apart), whether whole slots were missed
    or the row is late by most of one interval."""
    override = make_override(scan_interval="2s")
    now = timezone.now()
    for missed_by, due in ((timedelta(seconds=29.8), now + timedelta(seconds=0.2)),
                           (timedelta(seconds=1.97), now + timedelta(seconds=0.03)),
                           (timedelta(seconds=30.5), now - timedelta(seconds=30.5))):
        ModulePullOverride.objects.filter(pk=override.pk).update(next_check_at=now - missed_by)
        [claim] = polling.claim_checks(now=now, horizon=timedelta(seconds=1))
        assert claim.due == due
        assert claim.until == ModulePullOverride.objects.get(pk=override.pk).next_check_at > now
        assert claim.until - max(claim.due, now) >= timedelta(seconds=1.5)
