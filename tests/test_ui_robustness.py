"""The web UI with a cluster (the CR in the version the cluster serves), without one, and against bad input: never a
500, never a stack trace, never a secret."""

import pytest

from overrides.models import ModulePullOverride, ModuleSource
from tests.registries import make_docker_cfg

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh(settings, monkeypatch):
    monkeypatch.setattr("overrides.views.overrides._version_failure", None)


def cr_yaml(page: str) -> str:
    return page.split('<pre id="cr-yaml"', 1)[1].split("</pre>", 1)[0]


@pytest.mark.kube(mpo_versions=["v1alpha2"])
def test_yaml_in_the_version_the_cluster_serves(admin_client, cluster_settings, make_override):
    make_override(rollback=True)
    page = admin_client.get("/overrides/echo/").content.decode()
    assert "apiVersion: deckhouse.io/v1alpha2" in cr_yaml(page) and "rollback: true" in cr_yaml(page)
    assert "source:" not in cr_yaml(page)  # v1alpha2 has no spec.source
    assert "the version the cluster serves" in page
    assert "Cluster sync is off." not in page
    assert '<span class="sync sync-pending">pending</span>' in page


@pytest.mark.kube(mpo_versions=["v1alpha1", "v1alpha2"])
def test_yaml_prefers_v1alpha1_where_served(admin_client, cluster_settings, make_override):
    make_override()
    page = admin_client.get("/overrides/echo/").content.decode()
    assert "apiVersion: deckhouse.io/v1alpha1" in cr_yaml(page) and "source: test" in cr_yaml(page)


def test_unreachable_cluster_still_shows_the_page(admin_client, cluster_settings, make_override):
    make_override()
    cluster_settings.set_down(True)
    response = admin_client.get("/overrides/echo/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "could not be asked which version it serves" in page
    assert "apiVersion: deckhouse.io/v1alpha1" in cr_yaml(page)
    # The failure is remembered briefly: the next page does not wait on the cluster again.
    from overrides import views

    assert views.overrides._version_failure is not None
    assert admin_client.get("/overrides/echo/").status_code == 200


BAD_GETS = [
    "/overrides/" + "a" * 3000 + "/", "/overrides/%00/", "/overrides/echo/?before=%00&after=-1.-1",
    "/overrides/echo/live/?before=1e400.5", "/sources/%2e%2e/", "/sources/test/tags/?module=" + "x" * 5000,
    "/sources/test/tags/?module=../../etc", "/sources/test/tags/?module=%00", "/sources/..%2f/modules/",
    "/?page=-1&per_page=abc&search=" + "%" * 50, "/audit/?since=2026-13-45T99:99&until=%00&objectId=1e9999",
    "/audit/?before=" + "9" * 39 + ".1", "/new/override/?source=%00&name=%00",
]


@pytest.mark.parametrize("url", BAD_GETS)
def test_bad_urls_never_fail(admin_client, make_override, url):
    make_override()
    response = admin_client.get(url)
    assert response.status_code in (200, 400, 404)
    assert b"Traceback" not in response.content


BAD_POSTS = [
    ("/new/override/", {"source": "test", "name": "x" * 500, "image_tag": "y" * 500, "scan_interval": "9" * 40}),
    ("/new/override/", {"source": ["test", "other"], "name": ["a", "b"], "image_tag": "main", "rollback": "maybe"}),
    ("/new/override/", {"source": "\x00", "name": "\x00", "image_tag": "\x00"}),
    ("/overrides/echo/edit/", {"source": "test", "image_tag": "main", "scan_interval": "99999999999999999999h"}),
    ("/overrides/echo/renew/", {"force": "\x00"}),
    ("/new/source/", {"name": "x" * 300, "repo": "\x00", "scheme": "FTP", "ca": "not a cert"}),
    ("/new/source/", {"name": "corp", "repo": "registry.example.com/x", "scheme": "HTTPS",
                       "new_docker_cfg": "not-base64!!", "ca": "-----BEGIN CERTIFICATE-----\nxx\n"}),
    ("/sources/test/edit/", {"repo": "registry.example.com/x", "scheme": "HTTPS", "new_docker_cfg": "x",
                             "clear_docker_cfg": "on"}),
]


@pytest.mark.parametrize("url, data", BAD_POSTS)
def test_bad_posts_never_fail(admin_client, make_override, url, data):
    make_override()
    response = admin_client.post(url, data)
    assert response.status_code in (200, 302, 400, 404)
    assert b"Traceback" not in response.content
    if response.status_code == 200:
        assert b'class="errorlist' in response.content


def test_a_huge_scan_interval_is_refused_in_words(admin_client, make_override):
    make_override()
    response = admin_client.post("/overrides/echo/edit/", {"source": "test", "image_tag": "main",
                                                           "scan_interval": "99999999999999999999h"})
    assert response.status_code == 200 and b"id_scan_interval_error" in response.content
    assert ModulePullOverride.objects.get().scan_interval == "15s"


def test_credentials_never_leave_the_server(admin_client, make_source, make_override):
    secret = make_docker_cfg("registry.example.com", "robot", "s3cret-pa55")
    source = make_source(docker_cfg=secret)
    make_override(source=source)
    pages = ["/", "/dashboard/rows/", "/overrides/echo/", "/overrides/echo/live/", "/overrides/echo/edit/",
             "/new/override/", "/sources/", "/sources/test/", "/sources/test/edit/", "/sources/test/delete/",
             "/sources/test/modules/", "/audit/"]
    for url in pages:
        body = admin_client.get(url).content.decode()
        assert secret not in body and "s3cret-pa55" not in body, url
    assert ModuleSource.objects.get().docker_cfg == secret
