"""The three roles the migration creates (overrides/identity/roles.py) and what each may do."""

import pytest
from django.contrib.auth.models import Group

from overrides.identity import roles

pytestmark = pytest.mark.django_db


def _user(django_user_model, role: str):
    user = django_user_model.objects.create_user(username=f"u-{role}")
    user.groups.set([Group.objects.get(name=role)])
    return django_user_model.objects.get(pk=user.pk)


def test_the_migration_created_the_roles():
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == set(roles.ROLES)


def test_viewer_reads_everything_but_tokens(django_user_model):
    viewer = _user(django_user_model, roles.VIEWER)
    for model in ("modulepulloverride", "modulesource", "digestobservation", "objectchange", "modulescope",
                  "skippedclusterobject"):
        assert viewer.has_perm(f"overrides.view_{model}"), model
    assert not viewer.has_perm("overrides.view_apitoken")
    assert not any(viewer.has_perm(f"overrides.{a}_modulepulloverride") for a in ("add", "change", "delete"))


def test_developer_changes_overrides_not_sources(django_user_model):
    developer = _user(django_user_model, roles.DEVELOPER)
    assert all(developer.has_perm(f"overrides.{a}_modulepulloverride") for a in ("view", "add", "change", "delete"))
    assert not developer.has_perm("overrides.change_modulesource")
    assert not developer.has_perm("overrides.view_apitoken")


def test_admin_holds_every_portal_permission(django_user_model):
    admin = _user(django_user_model, roles.ADMIN)
    assert admin.has_perm("overrides.change_modulesource") and admin.has_perm("overrides.delete_apitoken")
    assert admin.has_perm("auth.change_user")


def test_provider_groups_map_to_roles(settings):
    settings.PORTAL_OIDC_VIEWER_GROUPS = ["all"]
    settings.PORTAL_OIDC_DEVELOPER_GROUPS = ["devs", "all-devs"]
    settings.PORTAL_OIDC_ADMIN_GROUPS = ["ops"]
    assert roles.roles_for(["devs", "ops", "other"]) == {roles.DEVELOPER, roles.ADMIN}
    assert roles.roles_for(["other"]) == set()
    message = roles.refusal_message(["other"])
    assert "other" in message and "devs" in message and "ops" in message
