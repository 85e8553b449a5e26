"""Several replicas on PostgreSQL + Redis: two web servers and two qclusters on one database and one broker,
overrides on a real registry (checks counted at a proxy in front of it) and the Kubernetes API emulator. Run by
`make test-production`.
"""

import sys
import time

import pytest
from django_q.brokers import get_broker

from overrides.models import DigestObservation, ModulePullOverride
from overrides.polling.lease import LEASE_TTL
from tests.fixtures.jobs import wait_for
from tests.production.support import (
    AUTO_RENEW_OFF,
    INTERVAL,
    Api,
    all_checked,
    applies_of,
    assert_no_double_checks,
    assert_no_missed_slots,
    check_times,
    lease_holder_pid,
    make_overrides,
    needs_production_stack,
    process_group,
    wait_synced,
)
from tests.test_api_support import ci_user, make_token  # noqa: F401 - fixture

pytestmark = [needs_production_stack, pytest.mark.django_db(transaction=True)]
COUNT = 20


@pytest.fixture
def stack(cluster_settings, counting_proxy, registry, ci_user, web_server_factory, qcluster_factory):  # noqa: F811
    """Two web servers, the API of each for a write token, and a starter of qclusters (auto-renew off).

    No simulated controller: it would HEAD the same tags through the counting proxy, and only the portal's checks
    are counted here; "applied" is what the emulator accepted from the portal."""
    token = make_token(ci_user)
    webs = [web_server_factory(AUTO_RENEW_OFF) for _ in range(2)]
    yield {"apis": [Api(w.url, token) for w in webs], "emulator": cluster_settings, "proxy": counting_proxy,
           "registry": registry, "qcluster": lambda **kw: qcluster_factory(env=AUTO_RENEW_OFF, **kw)}


def test_two_qclusters_check_each_override_once_per_slot_and_apply_a_change_once(stack):
    web1, web2 = stack["apis"]
    emulator, proxy = stack["emulator"], stack["proxy"]
    modules = make_overrides(web1, [web2], stack["registry"], proxy.repo, COUNT)
    stack["qcluster"](workers=2)
    stack["qcluster"](workers=2)
    wait_for(lambda: all_checked(modules), timeout=60, what="first digests")
    for module in modules:
        wait_synced(module, "main", emulator)
    start = time.time()
    time.sleep(5 * INTERVAL + 0.5)
    end = time.time()
    for module in modules:
        times = check_times(proxy, module)
        assert_no_double_checks([t for t in times if t >= start])
        assert_no_missed_slots(times, start, end)
    assert DigestObservation.objects.filter(override__name__in=modules, origin="registry").count() == COUNT

    changed = modules[0]
    stack["registry"].push(changed, "pr1", "a branch build")
    before = applies_of(emulator, changed)
    response = web1("PUT", f"overrides/{changed}/", json={"source": "dev", "imageTag": "pr1",
                                                           "scanInterval": f"{INTERVAL:g}s"})
    assert response.status_code == 200, response.text
    wait_synced(changed, "pr1", emulator)
    seen = web2("GET", f"overrides/{changed}/").json()
    assert seen["imageTag"] == "pr1" and seen["sync"]["state"] == "synced"
    time.sleep(2 * INTERVAL)  # a second apply, if one were coming, would land in here
    assert applies_of(emulator, changed) == before + 1


TAKEOVER_MARGIN = 5.0  # seconds past LEASE_TTL


def test_killing_the_lease_holder_hands_over_without_losing_or_doubling_work(stack):
    """SIGKILL of the qcluster whose dispatcher holds the lease: the other qcluster's standby takes the lease over
    within the lease time (it expires at most `LEASE_TTL` after the holder's last heartbeat, and a standby looks
    every 0.5 s) plus `TAKEOVER_MARGIN`, 5 s: room for a loaded 2-core machine, and still far below the minute
    watchdog's 28-45 s. No pending apply is lost and no check is doubled."""
    web1, web2 = stack["apis"]
    emulator, proxy = stack["emulator"], stack["proxy"]
    modules = make_overrides(web1, [web2], stack["registry"], proxy.repo, 10)
    clusters = [stack["qcluster"](workers=2), stack["qcluster"](workers=2)]
    wait_for(lambda: all_checked(modules), timeout=60, what="first digests")
    time.sleep(INTERVAL)
    steady = time.time()  # from here on every check is a scheduled one (the first came from the create's task)
    holder = wait_for(lease_holder_pid, timeout=30, what="a lease holder")
    [victim] = [c for c in clusters if process_group(holder) == c.process.pid]

    # A change accepted just before the crash: its apply task may die with the qcluster that took it.
    stack["registry"].push(modules[1], "pr2", "another build")
    assert web2("PUT", f"overrides/{modules[1]}/", json={
        "source": "dev", "imageTag": "pr2", "scanInterval": f"{INTERVAL:g}s"}).status_code == 200
    killed_at = time.time()
    victim.stop()  # SIGKILL of the whole qcluster
    taken = wait_for(lambda: (lease_holder_pid() not in (None, holder)) and time.time(), timeout=150, interval=0.1,
                     what="another dispatcher holding the lease")
    takeover = taken - killed_at
    assert takeover < LEASE_TTL.total_seconds() + TAKEOVER_MARGIN, takeover
    wait_synced(modules[1], "pr2", emulator, timeout=60)
    time.sleep(3 * INTERVAL)
    resumed = time.time()
    time.sleep(4 * INTERVAL + 0.5)
    gaps = []
    for module in modules:
        times = [t for t in check_times(proxy, module, "pr2" if module == modules[1] else "main") if t >= steady]
        assert_no_double_checks(times)
        if module != modules[1]:
            assert_no_missed_slots(times, resumed, time.time())
            every = check_times(proxy, module)
            around = [t for t in every if t < killed_at][-1:] + [t for t in every if t >= killed_at][:1]
            gaps.append(around[1] - around[0] if len(around) == 2 else float("inf"))
    print(f"\nfail-over: lease taken {takeover:.1f}s after the SIGKILL; longest gap between two checks of one "
          f"override across it {max(gaps):.1f}s (interval {INTERVAL:g}s)", file=sys.stderr)
    assert ModulePullOverride.objects.get(name=modules[1]).sync_state == "synced"


def test_a_task_lost_in_the_broker_is_recovered_by_the_sweeps(stack):
    """django-q2's Redis broker does not acknowledge: a task taken by a worker that then dies is gone. Emptying
    the queue before any qcluster runs is the same loss; the dispatcher's level-triggered sweeps still apply the
    change and check the digest."""
    web1, _ = stack["apis"]
    emulator, proxy = stack["emulator"], stack["proxy"]
    [module] = make_overrides(web1, [], stack["registry"], proxy.repo, 1)
    broker = get_broker()
    assert broker.queue_size() >= 1  # its apply and check tasks
    broker.purge_queue()
    assert broker.queue_size() == 0
    stack["qcluster"](workers=2)
    wait_synced(module, "main", emulator)
    wait_for(lambda: all_checked([module]), timeout=30, what="the digest check")
