"""Cluster objects that break the portal's rules: refused by the read-back (against the API-server emulator),
listed once for admins, cleared when fixed or deleted; and no such row ever makes a list page answer 500."""

from __future__ import annotations

import logging

import pytest

from overrides.cluster import sync
from overrides.models import ModulePullOverride, ModuleSource, SkippedClusterObject

pytestmark = [pytest.mark.django_db, pytest.mark.kube(mpo_versions=["v1alpha1"])]


def skipped() -> dict[tuple[str, str], str]:
    return {(s.kind, s.name): s.reason for s in SkippedClusterObject.objects.all()}


def test_an_mpo_named_like_no_module_is_skipped_listed_once_and_cleared(cluster_settings, client, admin_user,
                                                                       caplog):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("dotted.module", "main", source="dev")
    emu.create_mpo("echo", "main", source="dev")
    with caplog.at_level(logging.WARNING, logger="overrides.cluster.readback"):
        summary = sync.read_back()
        assert sync.read_back().ok
    assert summary.imported == ["ModuleSource dev", "ModulePullOverride echo"]
    assert not ModulePullOverride.all_objects.filter(name="dotted.module").exists()
    [reason] = skipped().values()
    assert list(skipped()) == [("ModulePullOverride", "dotted.module")]
    assert reason.startswith('not imported: metadata.name: "dotted.module" is not a valid module name')
    assert [r.getMessage() for r in caplog.records if "dotted.module" in r.getMessage()] == [
        f"not imported from the cluster: ModulePullOverride dotted.module: {reason}"]  # once, not every pass

    client.force_login(admin_user)
    for url in ("/", "/dashboard/rows/"):
        response = client.get(url)
        assert response.status_code == 200 and b"echo" in response.content
    sources_page = client.get("/sources/").content.decode()
    assert "Skipped from the cluster" in sources_page and "dotted.module" in sources_page
    admin_list = client.get("/admin/overrides/skippedclusterobject/").content.decode()
    assert "dotted.module" in admin_list and "is not a valid module name" in admin_list

    emu.delete("mpo", "dotted.module")
    assert sync.read_back().ok
    assert skipped() == {}
    assert "Skipped from the cluster" not in client.get("/sources/").content.decode()


def test_the_skipped_list_is_for_admins_only(cluster_settings, client, django_user_model):
    from django.contrib.auth.models import Permission

    emu = cluster_settings
    emu.create_module_source("schemed", "https://registry.example.com/dev/modules", scheme="HTTPS")
    assert sync.read_back().ok
    assert list(skipped()) == [("ModuleSource", "schemed")]
    assert "spec.registry.repo: Write the repository without a scheme" in skipped()[("ModuleSource", "schemed")]
    viewer = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_modulesource",
                                                                       "view_modulepulloverride"]))
    client.force_login(viewer)
    page = client.get("/sources/")
    assert page.status_code == 200 and b"Skipped from the cluster" not in page.content


def test_an_unusable_image_tag_is_skipped_until_fixed_in_the_cluster(cluster_settings):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "-not-a-tag", source="dev")
    emu.create_mpo("long", "x" * 200, source="dev")  # storing it cut to 128 characters would change the image
    assert sync.read_back().ok
    assert set(skipped()) == {("ModulePullOverride", "echo"), ("ModulePullOverride", "long")}
    assert "spec.imageTag" in skipped()[("ModulePullOverride", "echo")]
    assert not ModulePullOverride.all_objects.exists()

    emu.patch("mpo", "echo", {"spec": {"imageTag": "main"}})
    assert sync.read_back().imported == ["ModulePullOverride echo"]
    assert list(skipped()) == [("ModulePullOverride", "long")]


def test_a_change_in_the_cluster_that_breaks_the_rules_is_not_taken_over(cluster_settings):
    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    assert sync.read_back().ok
    emu.patch("mpo", "echo", {"spec": {"imageTag": ".hidden"}})
    emu.patch("ms", "dev", {"spec": {"registry": {"repo": "https://registry.example.com/dev"}}})
    summary = sync.read_back()
    assert summary.taken_over == []
    assert ModulePullOverride.objects.get(name="echo").image_tag == "main"
    assert ModuleSource.objects.get(name="dev").repo == "registry.example.com/dev/modules"
    assert set(skipped()) == {("ModulePullOverride", "echo"), ("ModuleSource", "dev")}
    assert skipped()[("ModulePullOverride", "echo")].startswith("changed in the cluster, not taken over: ")

    emu.patch("mpo", "echo", {"spec": {"imageTag": "hotfix"}})
    emu.patch("ms", "dev", {"spec": {"registry": {"repo": "registry.example.com/dev"}}})
    assert sync.read_back().taken_over == ["ModuleSource dev", "ModulePullOverride echo"]
    assert skipped() == {}


def test_a_row_no_url_can_hold_never_breaks_a_list_page(client, admin_user, make_source):
    """A row imported before the read-back refused such names (as old versions did) is shown without a link."""
    source = make_source(name="dev")
    ModulePullOverride.objects.create(name="dotted.module", source=source, image_tag="main")
    ModulePullOverride.objects.create(name="echo", source=source, image_tag="main")
    client.force_login(admin_user)
    for url in ("/", "/dashboard/rows/", "/sources/", "/sources/dev/", "/sources/dev/delete/", "/audit/"):
        response = client.get(url)
        assert response.status_code == 200, url
    rows = client.get("/dashboard/rows/").content.decode()
    assert "dotted.module" in rows and 'href="/overrides/echo/"' in rows


def test_an_imported_override_with_an_unusable_tag_is_fixed_in_the_edit_form(cluster_settings, client, admin_user,
                                                                             make_source):
    """Rows imported before the read-back refused such tags: the form takes a valid tag, and the cluster gets it."""
    from datetime import timedelta

    from django.utils import timezone

    emu = cluster_settings
    emu.create_module_source("dev", "registry.example.com/dev/modules", scheme="HTTPS")
    emu.create_mpo("echo", "main", source="dev")
    assert sync.read_back().imported == ["ModuleSource dev", "ModulePullOverride echo"]
    ModulePullOverride.objects.filter(name="echo").update(image_tag="-not-a-tag")  # as an older import stored it
    client.force_login(admin_user)
    assert client.get("/overrides/echo/edit/").status_code == 200
    response = client.post("/overrides/echo/edit/", {"source": "dev", "image_tag": "pr-7", "scan_interval": "15s"})
    assert response.status_code == 302
    assert ModulePullOverride.objects.get(name="echo").image_tag == "pr-7"
    sync.apply_due(now=timezone.now() + timedelta(hours=1))
    assert emu.get("mpo", "echo")["spec"]["imageTag"] == "pr-7"
