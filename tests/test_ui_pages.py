"""Web UI pages: login, dashboard (badges, filters, refresh fragment), override page, audit page, permissions."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from overrides.models import DigestObservation, ModulePullOverride, ObjectChange

pytestmark = pytest.mark.django_db


DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


VIEW_PERMS = ("view_modulepulloverride", "view_modulesource", "view_objectchange")


@pytest.fixture
def viewer(django_user_model):
    """A user with the view permissions only (what the viewer role holds)."""
    user = django_user_model.objects.create_user(username="viewer", password="viewer-pass-123")
    user.user_permissions.add(*Permission.objects.filter(codename__in=VIEW_PERMS))
    return user


def _grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # drop the permission cache


def _set(override, **fields):
    ModulePullOverride.all_objects.filter(pk=override.pk).update(**fields)
    override.refresh_from_db()
    return override


@pytest.mark.parametrize("url", [
    "/", "/dashboard/rows/", "/overrides/echo/", "/overrides/echo/live/", "/new/override/", "/overrides/echo/edit/",
    "/sources/", "/sources/test/", "/audit/", "/sources/test/tags/?module=echo",
])
def test_every_page_requires_login(client, make_override, url):
    make_override()
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_login_page_and_logout(client, admin_user):
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="username"' in page.content and b"<label" in page.content
    response = client.post("/login/", {"username": "admin", "password": "wrong"})
    assert response.status_code == 200 and b"Please enter a correct username" in response.content
    response = client.post("/login/", {"username": "admin", "password": "admin-pass-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert b"Log out" in client.get("/").content
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_dashboard_lists_overrides_with_status_in_words(client, admin_user, make_source, make_override):
    source = make_source()
    now = timezone.now()
    rows = {
        "waiting": make_override(name="waiting", source=source),
        "off": make_override(name="off-mod", source=source),
        "err": make_override(name="broken", source=source),
    }
    _set(rows["off"], registry_digest=DIGEST_A, registry_checked_at=now, status_image_digest=DIGEST_A)
    _set(rows["err"], registry_checked_at=now, registry_error='module "broken" has no tag "main".')
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert page.count('data-verdict="sync-off"') == 3 and "cluster sync off" in page  # the verdict badge
    assert 'title="registry error: module "broken" has no tag "main"."' in page.replace("&quot;", '"')
    assert 'has no tag "main".">tag not found</span>' in page.replace("&quot;", '"')  # a short phrase in the cell
    detail = client.get("/overrides/broken/").content.decode().replace("&quot;", '"')
    assert '>registry error: module "broken" has no tag "main".</span>' in detail  # the full text on its page
    assert "aaaaaaaaaaaa" in page and DIGEST_A in page  # short text, full digest in the title
    assert "Cluster sync is off." in page  # the banner
    assert " UTC" in page


def test_dashboard_filters_use_the_api_filterset(client, admin_user, make_source, make_override):
    one, two = make_source(name="one"), make_source(name="two", repo="registry.example.com/other")
    make_override(name="alpha", source=one, image_tag="main")
    make_override(name="beta", source=two, image_tag="pr-7")
    broken = make_override(name="gamma", source=two, image_tag="pr-8")
    _set(broken, registry_error="connection refused")
    client.force_login(admin_user)

    def names(query):
        html = client.get("/dashboard/rows/" + query).content.decode()
        return {n for n in ("alpha", "beta", "gamma") if f'data-key="{n}"' in html}

    assert names("") == {"alpha", "beta", "gamma"}
    assert names("?source=two") == {"beta", "gamma"}
    assert names("?search=pr-7") == {"beta"}
    assert names("?sync_state=off") == {"alpha", "beta", "gamma"}
    assert names("?sync_state=pending") == set()
    assert names("?registry_error=1") == {"gamma"}
    # Nonsense never fails the page.
    for query in ("?sync_state=bogus", "?page=zz", "?per_page=-3", "?source=%00", "?ordering=password"):
        assert client.get("/" + query).status_code == 200
    page = client.get("/?source=one").content.decode()
    assert "match the filters" in page and 'value="one" selected' in page


def test_dashboard_fragment_is_the_table_body(client, admin_user, make_override):
    make_override()
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert 'data-refresh-url="/dashboard/rows/"' in page
    fragment = client.get("/dashboard/rows/")
    assert fragment["Cache-Control"] == "no-store"
    body = fragment.content.decode()
    assert body.lstrip().startswith("<tr") and "<html" not in body and 'data-key="echo"' in body


def test_override_page_shows_spec_status_timeline_audit_and_yaml(client, admin_user, make_override):
    override = make_override(image_tag="main", scan_interval="30s")
    t0 = timezone.now() - timedelta(minutes=10)
    for digest, origin, at in ((DIGEST_A, "registry", t0), (DIGEST_A, "cluster", t0 + timedelta(seconds=12)),
                               (DIGEST_B, "registry", t0 + timedelta(minutes=5))):
        DigestObservation.objects.create(override=override, digest=digest, image_ref=override.image_ref,
                                         origin=origin, observed_at=at)
    _set(override, registry_digest=DIGEST_B, registry_checked_at=timezone.now(), status_image_digest=DIGEST_A,
         status_message="Ready", sync_state="synced", cluster_seen_at=timezone.now())
    client.force_login(admin_user)
    page = client.get("/overrides/echo/").content.decode()
    assert "registry.example.com/deckhouse/modules/echo:main" in page
    assert 'data-verdict="pending"' in page and "new image, not deployed" in page and "Renew to deploy" in page
    assert "12s" in page  # how long the cluster took for digest A
    assert page.count('<code class="digest"') == 2
    assert "kind: ModulePullOverride" in page and "imageTag: main" in page and "scanInterval: 30s" in page
    assert "source: test" in page  # v1alpha1 while sync is off
    assert "imageTag: main, scanInterval: 30s" in page  # the audit record of the creation
    for label in ("Renew", "Force renew", "Edit", "Delete"):
        assert f">{label}<" in page
    live = client.get("/overrides/echo/live/").content.decode()
    assert "<html" not in live and "12s" in live


def test_deleted_override_page_is_history_without_actions(client, admin_user, make_override, actor):
    from overrides import services

    override = make_override()
    services.override_delete(actor=actor, override=override)
    client.force_login(admin_user)
    page = client.get("/overrides/echo/").content.decode()
    assert "This override was deleted" in page and ">Renew<" not in page
    assert client.get("/overrides/echo/edit/").status_code == 404
    assert client.post("/overrides/echo/renew/").status_code == 404
    assert client.get("/overrides/nope/").status_code == 404
    assert client.get("/overrides/Not_A_Name!/").status_code == 404


def test_buttons_follow_permissions_and_server_refuses_anyway(client, viewer, make_override):
    override = make_override()
    client.force_login(viewer)
    dashboard = client.get("/").content.decode()
    assert "New override" not in dashboard
    page = client.get("/overrides/echo/").content.decode()
    for label in (">Renew<", ">Force renew<", ">Edit<", ">Delete<"):
        assert label not in page
    assert client.get("/new/override/").status_code == 403
    assert client.post("/new/override/", {"source": "test", "name": "x", "image_tag": "main"}).status_code == 403
    assert client.get("/overrides/echo/edit/").status_code == 403
    assert client.post("/overrides/echo/renew/").status_code == 403
    assert client.post("/overrides/echo/delete/").status_code == 403
    assert client.post("/sources/test/discover/").status_code == 403
    assert client.get("/new/source/").status_code == 403
    assert ModulePullOverride.objects.filter(pk=override.pk).exists()
    assert not ObjectChange.objects.filter(action__in=["renew", "delete"]).exists()

    changer = _grant(viewer, "change_modulepulloverride")
    client.force_login(changer)
    page = client.get("/overrides/echo/").content.decode()
    assert ">Renew<" in page and ">Edit<" in page and ">Delete<" not in page
    assert client.post("/overrides/echo/renew/").status_code == 302
    assert client.post("/overrides/echo/delete/").status_code == 403


def test_renew_and_force_renew_need_post_and_csrf(admin_user, make_override):
    from django.test import Client

    make_override()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    assert csrf_client.get("/overrides/echo/renew/").status_code == 405
    assert csrf_client.post("/overrides/echo/renew/", {"force": "1"}).status_code == 403  # no CSRF token
    assert not ObjectChange.objects.filter(action="renew").exists()
    page = csrf_client.get("/overrides/echo/")
    token = csrf_client.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = csrf_client.post("/overrides/echo/renew/", {"force": "1", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/overrides/echo/"
    [change] = ObjectChange.objects.filter(action="renew")
    assert change.context == "web" and change.user_name == "admin" and change.after["force"] is True
    assert change.request_id is not None
    override = ModulePullOverride.objects.get(name="echo")
    assert override.renew_requested_at is not None and override.renew_force
    followed = csrf_client.get("/overrides/echo/").content.decode()
    assert "Forced renew requested" in followed and "renew requested (forced" in followed


def test_audit_page_filters_and_pages(client, admin_user, make_source, make_override, actor):
    from overrides import services

    source = make_source()
    override = make_override(source=source)
    services.override_update(actor=actor, override=override, image_tag="pr1")
    client.force_login(admin_user)
    assert client.post("/overrides/echo/renew/").status_code == 302

    def rows(query=""):
        response = client.get("/audit/" + query)
        assert response.status_code == 200
        return response.content.decode()

    page = rows()
    assert "imageTag: main → pr1" in page and "renew requested" in page
    assert 'href="/overrides/echo/"' in page and 'href="/sources/test/"' in page
    assert "renew requested" not in rows("?action=update")
    assert "imageTag: main → pr1" not in rows("?user=admin") and "renew requested" in rows("?user=admin")
    assert "renew requested" in rows("?context=web") and "renew requested" not in rows("?context=cli")
    assert "registry.example.com" not in rows("?objectType=override")
    assert "imageTag" not in rows("?objectType=source") and "registry.example.com" in rows("?objectType=source")
    assert "renew requested" not in rows(f"?objectId={override.pk}&action=create")
    assert "imageTag: main" in rows("?objectName=echo") and "No changes recorded." in rows("?objectName=nope")
    future = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No changes recorded." in rows(f"?since={future}") and "renew" in rows(f"?until={future}")
    for bad in ("?since=yesterday", "?requestId=nope", "?before=zzz", "?after=1.x", "?objectId=abc",
                "?action=explode", "?before=99999999999999999999.1"):
        rows(bad)

    # Keyset pages: newest first, older/newer links, no row on two pages.
    for i in range(60):
        services.override_update(actor=actor, override=override, image_tag=f"t{i}")
    first = rows("?objectType=override")
    assert "Older" in first and "Newer" not in first
    older = first.split('href="/audit/?objectType=override&amp;before=')[1].split('"')[0]
    second = rows(f"?objectType=override&before={older}")
    assert "Newer" in second and "t58 → t59" in first and "t58 → t59" not in second
    assert "pr1 → t0" in second
