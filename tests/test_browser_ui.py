"""The web UI in a real browser (headless Chromium + Selenium) against the live server, a real registry and a real
`manage.py qcluster` doing the digest checks: what a developer does with the portal, end to end."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from overrides import services
from overrides.audit import Actor
from overrides.models import ModulePullOverride, ObjectChange

PASSWORD = "admin-pass-123"  # tests.fixtures.core.admin_user


@pytest.fixture(autouse=True)
def _fast_ui(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PORTAL_UI_REFRESH_SECONDS = 1


def _timeline_digests(browser) -> list[str]:
    cells = browser.find_elements(By.CSS_SELECTOR, "#timeline-table tbody code.digest")
    return [c.get_attribute("title") for c in cells]


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def _text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


@pytest.mark.django_db(transaction=True)
def test_developer_flow_in_a_browser(browser, browser_login, wait_until, live_server, admin_user, registry,
                                     qcluster):
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
    browser.find_element(By.LINK_TEXT, "New override").click()
    Select(browser.find_element(By.NAME, "source")).select_by_visible_text("local")
    wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, f'#module-suggestions option[value="{module}"]'),
               message="module discovery did not reach the datalist")
    browser.find_element(By.NAME, "name").send_keys(module)
    wait_until(browser, lambda b: "1 tag found" in b.find_element(By.ID, "tag-status").text,
               message="tag suggestions did not load")
    assert browser.find_element(By.CSS_SELECTOR, '#tag-suggestions option[value="main"]')
    browser.find_element(By.NAME, "image_tag").send_keys("main")
    scan = browser.find_element(By.NAME, "scan_interval")
    scan.clear()
    scan.send_keys("1s")
    browser.find_element(By.CSS_SELECTOR, "#override-form button[type=submit]").click()
    wait_until(browser, lambda b: b.current_url.endswith(f"/overrides/{module}/"))
    assert f"{repo}/{module}:main" in _text(browser)

    # The qcluster's checks find the digest; the page shows it without a reload.
    browser.execute_script("window.notReloaded = true;")
    wait_until(browser, lambda b: _timeline_digests(b) == [first], timeout=20, message="first digest not shown")
    wait_until(browser, lambda b: "cluster sync off" in b.find_element(By.CSS_SELECTOR, ".status-line").text)
    assert browser.execute_script("return window.notReloaded === true;")

    # The dashboard lists it with the registry digest, and follows a new build of the tag without a reload.
    browser.find_element(By.LINK_TEXT, "Overrides").click()
    row_css = f'tr[data-key="{module}"]'
    row = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, row_css))
    assert short(first) in row.text and "local" in row.text and "main" in row.text
    browser.execute_script("window.notReloaded = true;")
    second = registry.push(module, "main", b"build 2", repo=repo)
    wait_until(browser, lambda b: short(second) in b.find_element(By.CSS_SELECTOR, row_css).text, timeout=20,
               message="the dashboard did not show the second digest")
    assert browser.execute_script("return window.notReloaded === true;")

    # On the override page, the timeline grows while the page stays open.
    browser.find_element(By.CSS_SELECTOR, row_css).find_element(By.LINK_TEXT, module).click()
    wait_until(browser, lambda b: _timeline_digests(b) == [second, first])
    browser.execute_script("window.notReloaded = true;")
    third = registry.push(module, "main", b"build 3", repo=repo)
    wait_until(browser, lambda b: _timeline_digests(b) == [third, second, first], timeout=20,
               message="the third digest did not appear")
    assert browser.execute_script("return window.notReloaded === true;")

    # Renew.
    browser.find_element(By.XPATH, "//button[normalize-space()='Renew']").click()
    wait_until(browser, lambda b: "Renew requested" in _text(b))
    assert ObjectChange.objects.filter(action="renew", context="web", user_name="admin").exists()

    # Edit with a bad tag: the error is next to the field and the typed value stays.
    browser.find_element(By.LINK_TEXT, "Edit").click()
    tag = browser.find_element(By.NAME, "image_tag")
    tag.clear()
    tag.send_keys("bad tag!")
    tag.send_keys(Keys.ENTER)
    error = wait_until(browser, lambda b: b.find_element(By.ID, "id_image_tag_error"))
    assert "not a valid image tag" in error.text
    tag = browser.find_element(By.NAME, "image_tag")
    assert tag.get_attribute("value") == "bad tag!" and tag.get_attribute("aria-invalid") == "true"
    assert ModulePullOverride.objects.get(name=module).image_tag == "main"

    # Delete, after a confirmation that says what happens to the running module.
    browser.find_element(By.LINK_TEXT, "Cancel").click()
    browser.find_element(By.LINK_TEXT, "Delete").click()
    assert "keeps running the developer build until a release replaces it" in _text(browser)
    browser.find_element(By.XPATH, "//button[normalize-space()='Delete override']").click()
    wait_until(browser, lambda b: "deleted" in _text(b) and b.current_url == base + "/")
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-key="{module}"]')
    assert not ModulePullOverride.objects.filter(name=module).exists()


@pytest.mark.django_db(transaction=True)
def test_phone_width_and_keyboard(browser, browser_login, wait_until, live_server, admin_user, make_override):
    make_override(name="echo")
    browser.set_window_size(390, 844)
    browser_login(browser, live_server.url, "admin", PASSWORD)
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-key="echo"]')
    # The table becomes cards: each row a block, each cell labelled by its column.
    assert row.value_of_css_property("display") == "block"
    label = browser.execute_script(
        "return getComputedStyle(arguments[0], '::before').content;", row.find_element(By.CSS_SELECTOR, "td"))
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
