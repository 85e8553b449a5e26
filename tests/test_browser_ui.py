"""The web UI in a real browser (headless Chromium + Selenium) against the live server, a real registry and a real
`manage.py qcluster` doing the digest checks: what a developer does with the portal, end to end.

The dashboard rows and the override page's live part refresh themselves every second here, so elements in them are
looked up afresh for every read and click (`tests.fixtures.browser` helpers), never kept across a wait."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from overrides import services
from overrides.audit import Actor
from overrides.models import ModulePullOverride, ObjectChange
from tests.fixtures.browser import click, read_element, wait_until

PASSWORD = "admin-pass-123"  # tests.fixtures.core.admin_user
# Waits on the registry and the qcluster's checks: generous, for a loaded CI machine; only a failure waits this long.
SLOW = 45


@pytest.fixture(autouse=True)
def _fast_ui(settings):
    settings.PORTAL_UI_REFRESH_SECONDS = 1


def _timeline_digests(browser) -> list[str]:
    """The full digests of the timeline, newest first (raises StaleElementReferenceException if a refresh swaps the
    table while it is read: call it inside `wait_until`, which reads again)."""
    cells = browser.find_elements(By.CSS_SELECTOR, "#timeline-table tbody code.digest")
    return [c.get_attribute("title") for c in cells]


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def _text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


@pytest.mark.django_db(transaction=True)
def test_developer_flow_in_a_browser(browser, browser_login, live_server, admin_user, registry, qcluster):
    base = live_server.url
    repo = f"{registry.host}/{registry.unique('ui')}/modules"
    module = registry.unique("echo")
    registry.publish_module(module, repo=repo)
    first = registry.push(module, "main", b"build 1", repo=repo)
    services.source_create(actor=Actor.system("cli"), name="local", repo=repo, scheme="HTTP")

    browser.get(base + "/")
    assert "/login/" in browser.current_url  # every page needs a login
    browser_login(browser, base, "admin", PASSWORD)
    assert "Cluster sync is off." in _text(browser)

    # Create the override through the form: module and tag suggestions come from the registry.
    click(browser, By.LINK_TEXT, "New override")
    Select(browser.find_element(By.NAME, "source")).select_by_visible_text("local")
    wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f'#module-suggestions option[value="{module}"]'),
               timeout=SLOW, message="module discovery did not reach the datalist")
    browser.find_element(By.NAME, "name").send_keys(module)
    wait_until(browser, lambda b: "1 tag found" in b.find_element(By.ID, "tag-status").text, timeout=SLOW,
               message="tag suggestions did not load")
    assert browser.find_element(By.CSS_SELECTOR, '#tag-suggestions option[value="main"]')
    browser.find_element(By.NAME, "image_tag").send_keys("main")
    scan = browser.find_element(By.NAME, "scan_interval")
    scan.clear()
    scan.send_keys("1s")
    click(browser, By.CSS_SELECTOR, "#override-form button[type=submit]")
    wait_until(browser, lambda b: b.current_url.endswith(f"/overrides/{module}/"), message="no override page")
    assert f"{repo}/{module}:main" in _text(browser)

    # The qcluster's checks find the digest; the page shows it without a reload.
    browser.execute_script("window.notReloaded = true;")
    wait_until(browser, lambda b: _timeline_digests(b) == [first], timeout=SLOW, message="first digest not shown")
    wait_until(browser, lambda b: "cluster sync off" in b.find_element(By.CSS_SELECTOR, ".status-line").text,
               message="the status line does not say that cluster sync is off")
    assert browser.execute_script("return window.notReloaded === true;")

    # The dashboard lists it with the registry digest, and follows a new build of the tag without a reload.
    click(browser, By.LINK_TEXT, "Overrides")
    row_css = f'tr[data-key="{module}"]'
    row_text = read_element(browser, By.CSS_SELECTOR, row_css)
    assert short(first) in row_text and "local" in row_text and "main" in row_text
    browser.execute_script("window.notReloaded = true;")
    second = registry.push(module, "main", b"build 2", repo=repo)
    wait_until(browser, lambda b: short(second) in b.find_element(By.CSS_SELECTOR, row_css).text, timeout=SLOW,
               message="the dashboard did not show the second digest")
    assert browser.execute_script("return window.notReloaded === true;")

    # On the override page, the timeline grows while the page stays open. The link sits in a refreshing row.
    click(browser, By.CSS_SELECTOR, f"{row_css} th a", until=lambda b: b.current_url.endswith(f"/overrides/{module}/"))
    wait_until(browser, lambda b: _timeline_digests(b) == [second, first], message="timeline not [second, first]")
    browser.execute_script("window.notReloaded = true;")
    third = registry.push(module, "main", b"build 3", repo=repo)
    wait_until(browser, lambda b: _timeline_digests(b) == [third, second, first], timeout=SLOW,
               message="the third digest did not appear")
    assert browser.execute_script("return window.notReloaded === true;")

    # Renew (a form post: clicked once, never repeated).
    click(browser, By.XPATH, "//button[normalize-space()='Renew']")
    wait_until(browser, lambda b: "Renew requested" in _text(b), message="no renew confirmation")
    assert ObjectChange.objects.filter(action="renew", context="web", user_name="admin").exists()

    # Edit with a bad tag: the error is next to the field and the typed value stays.
    click(browser, By.LINK_TEXT, "Edit")
    tag = browser.find_element(By.NAME, "image_tag")
    tag.clear()
    tag.send_keys("bad tag!")
    tag.send_keys(Keys.ENTER)
    assert "not a valid image tag" in read_element(browser, By.ID, "id_image_tag_error")
    tag = browser.find_element(By.NAME, "image_tag")
    assert tag.get_attribute("value") == "bad tag!" and tag.get_attribute("aria-invalid") == "true"
    assert ModulePullOverride.objects.get(name=module).image_tag == "main"

    # Delete, after a confirmation that says what happens to the running module.
    click(browser, By.LINK_TEXT, "Cancel")
    click(browser, By.LINK_TEXT, "Delete")
    assert "keeps running the developer build until a release replaces it" in _text(browser)
    click(browser, By.XPATH, "//button[normalize-space()='Delete override']")
    wait_until(browser, lambda b: "deleted" in _text(b) and b.current_url == base + "/", message="not deleted")
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-key="{module}"]')
    assert not ModulePullOverride.objects.filter(name=module).exists()


def _refresh_done(browser, previous: str) -> str | None:
    """The dashboard's "last update" stamp once a refresh later than `previous` has completed."""
    stamp = browser.find_element(By.CSS_SELECTOR, "[data-refresh-time]").text
    return stamp if stamp != previous else None


@pytest.mark.django_db(transaction=True)
def test_refresh_replaces_only_what_changed(browser, browser_login, live_server, admin_user, make_source,
                                            make_override):
    """A refresh that brings nothing new leaves the rows alone, and a change replaces only its own row: a click, a
    text selection or the keyboard focus in another row survives it."""
    source = make_source(name="local")
    make_override(name="echo", source=source)
    make_override(name="other", source=source)
    browser_login(browser, live_server.url, "admin", PASSWORD)
    browser.execute_script("""
        document.querySelectorAll('#override-rows tr').forEach(function (row) { row.portalFirstRender = true; });
        document.querySelector('tr[data-key="other"] a').focus();""")
    originals = ("return Object.fromEntries(Array.from(document.querySelectorAll('#override-rows tr'),"
                 " row => [row.dataset.key, row.portalFirstRender === true]));")

    stamp = wait_until(browser, lambda b: _refresh_done(b, "now"), message="the rows were never refreshed")
    wait_until(browser, lambda b: _refresh_done(b, stamp), message="the rows were refreshed only once")
    assert browser.execute_script(originals) == {"echo": True, "other": True}  # nothing changed: same elements

    digest = "sha256:" + "ab" * 32
    ModulePullOverride.objects.filter(name="echo").update(registry_digest=digest)  # as a registry check does
    wait_until(browser, lambda b: short(digest) in b.find_element(By.CSS_SELECTOR, 'tr[data-key="echo"]').text,
               message="the new digest did not show")
    assert browser.execute_script(originals) == {"echo": False, "other": True}
    assert browser.execute_script("return document.activeElement.textContent;") == "other"


@pytest.mark.django_db(transaction=True)
def test_phone_width_and_keyboard(browser, browser_login, live_server, admin_user, make_override):
    make_override(name="echo")
    browser.set_window_size(390, 844)
    browser_login(browser, live_server.url, "admin", PASSWORD)
    row_css = 'tr[data-key="echo"]'
    # The table becomes cards: each row a block, each cell labelled by its column.
    assert read_element(browser, By.CSS_SELECTOR, row_css, lambda row: row.value_of_css_property("display")) == "block"
    label = read_element(browser, By.CSS_SELECTOR, f"{row_css} td", lambda cell: browser.execute_script(
        "return getComputedStyle(arguments[0], '::before').content;", cell))
    assert "Source" in label
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")

    # Keyboard: the first Tab reaches the skip link, which moves focus to the content; focus is visible.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    assert focused.value_of_css_property("outline-style") != "none"
    focused.send_keys(Keys.ENTER)
    wait_until(browser, lambda b: b.switch_to.active_element.get_attribute("id") == "main")
