"""The ClusterRole in deploy/ is least privilege, proven against what the portal really asked for.

The Kubernetes API emulator records the RBAC attributes of every request the product's client sent in this test
run (tests/kube/access.py, told apart by its User-Agent). These tests run after all others (`runs_last`) and
compare that record with the ClusterRole `kubectl kustomize deploy/base` renders: every request is allowed, and
with the whole suite collected, every (group, resource, verb) granted was used. Adding an API call to the
product: a rule in deploy/base/rbac.yaml and a test that makes the call; both tests then agree again.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy import kubectl, one, render
from tests.fixtures.kube import WHOLE_SUITE
from tests.kube.access import Access, product_access

pytestmark = [pytest.mark.runs_last,
              pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders deploy/)")]

# Discovery documents: the built-in ClusterRole system:discovery grants them to every authenticated client.
DISCOVERY = re.compile(r"^/(version|api|apis|api/v1|apis/[a-z0-9.-]+(/v[0-9a-z]+)?)/?$")


def _rules() -> list[dict]:
    return one(render("base"), "ClusterRole", "mpo-portal")["rules"]


def _grants(rules: list[dict]) -> set[Access]:
    """Every (verb, group, resource, subresource) the rules name, one by one."""
    grants = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                name, _, sub = resource.partition("/")
                grants.update(Access(verb, group, name, sub) for verb in rule["verbs"])
    return grants


def test_the_cluster_role_names_everything_explicitly():
    rules = _rules()
    for rule in rules:
        assert not rule.get("nonResourceURLs"), rule
        assert "*" not in rule["verbs"] + rule["apiGroups"] + rule["resources"], rule
        assert not [r for r in rule["resources"] if "/" in r], f"no subresource (status) is the portal's: {rule}"
        assert not rule.get("resourceNames"), rule


def test_every_request_the_portal_made_is_allowed_by_the_cluster_role():
    used, non_resource = product_access()
    if not used:
        pytest.skip("no test in this run made the portal call the Kubernetes API")
    denied = sorted(str(a) for a in used - _grants(_rules()))
    assert not denied, f"the portal made requests deploy/base/rbac.yaml does not allow: {denied}"
    assert not {a for a in used if a.subresource}, "the portal never writes or reads a subresource (status)"
    assert all(verb == "get" and DISCOVERY.match(path) for verb, path in non_resource), non_resource


def test_the_cluster_role_grants_only_what_the_portal_used(request):
    if not request.config.stash.get(WHOLE_SUITE, False):
        pytest.skip("needs the whole suite in one run: which calls the portal makes is learnt from all tests")
    used, _ = product_access()
    unused = sorted(str(a) for a in _grants(_rules()) - used)
    assert not unused, f"deploy/base/rbac.yaml grants what the portal never used in the whole suite: {unused}"
