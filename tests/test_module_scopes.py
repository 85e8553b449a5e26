"""Module scopes (overrides/scopes.py): a scoped group's members change only the modules of their patterns,
through every entry point (web UI, API with a personal token, admin); refusals name the rule and change
nothing; reading stays open; superusers and unscoped users are not restricted."""

import html

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.test import APIClient

from overrides import services, tokens
from overrides.audit import Actor
from overrides.identity.roles import DEVELOPER, ensure_roles
from overrides.models import ModulePullOverride, ModuleScope, ObjectChange
from overrides.scopes import ModuleScopeDenied, module_in_scope, require_module_scope

pytestmark = pytest.mark.django_db
RULE = 'group "team-a" may change team-a-*'


@pytest.fixture
def team_a(django_user_model):
    """A developer in group team-a, which may change only team-a-* modules."""
    ensure_roles()
    team = Group.objects.create(name="team-a")
    ModuleScope.objects.create(group=team, pattern="team-a-*")
    user = django_user_model.objects.create_user(username="ann", password="ann-pass-123", email="ann@example.com")
    user.groups.set([team, Group.objects.get(name=DEVELOPER)])
    return user


@pytest.fixture
def echo(make_source, make_override):
    return make_override(name="echo", source=make_source(name="dev"))


def test_the_rule(team_a, admin_user, django_user_model):
    assert module_in_scope(team_a, "team-a-web") and not module_in_scope(team_a, "echo")
    assert module_in_scope(admin_user, "echo")  # superusers are never restricted
    assert module_in_scope(django_user_model.objects.create_user(username="free"), "echo")  # no scoped group
    assert module_in_scope(None, "echo")  # the scheduler, the cluster
    with pytest.raises(ModuleScopeDenied, match=RULE):
        require_module_scope(team_a, "echo")


def test_services_refuse_every_write_outside_the_scope(team_a, echo):
    actor = Actor(context="web", user=team_a)
    for call in (
        lambda: services.override_create(actor=actor, name="other", source="dev", image_tag="x"),
        lambda: services.override_update(actor=actor, override=echo, image_tag="x"),
        lambda: services.override_upsert(actor=actor, name="echo", data={"image_tag": "x"}),
        lambda: services.override_renew(actor=actor, override=echo),
        lambda: services.override_delete(actor=actor, override=echo),
    ):
        with pytest.raises(ModuleScopeDenied):
            call()
    echo.refresh_from_db()
    assert echo.image_tag == "main" and echo.deleted_at is None and echo.renew_requested_at is None
    assert not ObjectChange.objects.filter(user=team_a).exists()
    created = services.override_create(actor=actor, name="team-a-web", source="dev", image_tag="pr1")
    assert created.pk


def test_web_ui_refuses_with_the_rule(client, team_a, echo):
    client.force_login(team_a)
    response = client.post("/new/override/", {"source": "dev", "name": "other", "image_tag": "pr1",
                                              "scan_interval": "1m"})
    assert response.status_code == 403 and RULE in html.unescape(response.content.decode())
    assert not ModulePullOverride.objects.filter(name="other").exists()
    response = client.post(f"/overrides/{echo.name}/renew/")
    assert response.status_code == 403 and RULE in html.unescape(response.content.decode())
    assert client.get("/overrides/echo/").status_code == 200  # reading stays open
    response = client.post("/new/override/", {"source": "dev", "name": "team-a-web", "image_tag": "pr1",
                                              "scan_interval": "1m"})
    assert response.status_code == 302 and ModulePullOverride.objects.filter(name="team-a-web").exists()


def test_api_with_a_personal_token_refuses_with_the_rule(team_a, echo):
    _, plaintext = tokens.token_create(actor=Actor(context="web", user=team_a), owner=team_a, description="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    for method, url, body in (("put", "/api/v1/overrides/other/", {"source": "dev", "imageTag": "x"}),
                              ("patch", "/api/v1/overrides/echo/", {"imageTag": "x"}),
                              ("post", "/api/v1/overrides/echo/renew/", {}),
                              ("delete", "/api/v1/overrides/echo/", None)):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 403, (method, url, response.content)
        assert RULE in response.json()["detail"]
    echo.refresh_from_db()
    assert echo.image_tag == "main" and echo.deleted_at is None
    assert api.get("/api/v1/overrides/echo/").status_code == 200
    response = api.put("/api/v1/overrides/team-a-api/", {"source": "dev", "imageTag": "pr1"}, format="json")
    assert response.status_code == 201
    change = ObjectChange.objects.get(object_repr="team-a-api")
    assert change.user_name == "ann" and change.identity == f"token {plaintext[:8]}…"


def test_admin_refuses_with_the_rule(client, team_a, echo):
    team_a.is_staff = True
    team_a.save()
    client.force_login(team_a)
    response = client.post(reverse("admin:overrides_modulepulloverride_add"),
                           {"name": "other", "source": echo.source_id, "image_tag": "x", "scan_interval": "15s"})
    assert response.status_code == 200 and RULE in html.unescape(response.content.decode())
    assert not ModulePullOverride.objects.filter(name="other").exists()
    response = client.post(reverse("admin:overrides_modulepulloverride_changelist"),
                           {"action": "renew_selected", "_selected_action": [echo.pk]}, follow=True)
    assert RULE in html.unescape(response.content.decode())
    echo.refresh_from_db()
    assert echo.renew_requested_at is None


def test_admin_manages_module_scopes(client, admin_user):
    client.force_login(admin_user)
    team = Group.objects.create(name="team-b")
    response = client.post(reverse("admin:overrides_modulescope_add"), {"group": team.pk, "pattern": "team-b-*"})
    assert response.status_code == 302
    assert list(ModuleScope.objects.values_list("group__name", "pattern")) == [("team-b", "team-b-*")]
    response = client.post(reverse("admin:overrides_modulescope_add"), {"group": team.pk, "pattern": "Bad Name"})
    assert response.status_code == 200 and "A module name pattern" in response.content.decode()


def test_a_groups_admin_page_holds_its_module_scopes(client, admin_user, team_a):
    client.force_login(admin_user)
    team = Group.objects.get(name="team-a")
    page = client.get(reverse("admin:auth_group_change", args=[team.pk])).content.decode()
    assert "Module scopes" in page and 'value="team-a-*"' in page
