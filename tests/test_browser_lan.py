"""The LAN in a real browser: no CSP violation on any page, forms with JS on and off.

Violations are caught twice: from the browser's own log over the DevTools
protocol (works with JavaScript off), and by a ``securitypolicyviolation``
listener injected before any page script (with JavaScript on).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_browser import (  # noqa: F401 - fixtures used by name
    CHROMIUM,
    TABLET,
    Daemon,
    browser,
    daemon,
    open_page,
    tap_product,
)

PIN = "246810"
CATCH = """document.addEventListener("securitypolicyviolation", e => {
  (window.cspViolations = window.cspViolations || []).push(
    e.violatedDirective + " " + e.blockedURI);
});"""
PAGES = ["/till", "/sales", "/shifts", "/devices", "/sync", "/printer", "/clock",
         "/display/manage", "/methodology", "/verify", "/elevate", "/tablets"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not "
                       "installed at /usr/bin/chromium (apt-get install chromium)"),
]


async def watch_csp(page: Any) -> list[str]:
    """Collect CSP complaints from the browser log and, with JS, from the page."""
    found: list[str] = []
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Log.enable")
    cdp.on("Log.entryAdded", lambda event: found.append(event["entry"]["text"])
           if "Content Security Policy" in event["entry"]["text"] else None)
    page.on("console", lambda msg: found.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    await page.add_init_script(CATCH)
    return found


async def enter_pin(page: Any) -> None:
    await page.fill("input[name=manager_pin]", PIN)
    await page.click("#pin-form button[type=submit]")


@pytest.mark.parametrize("javascript", [True, False])
async def test_pages_and_forms_work_under_the_csp(
        browser: Any, daemon: Daemon, javascript: bool) -> None:  # noqa: F811
    await daemon.box.lan.set_pin(PIN, "test")
    page = await open_page(browser, daemon, TABLET, javascript=javascript)
    violations = await watch_csp(page)
    await page.reload()
    await tap_product(page, "Zimtschnecke")
    await page.click(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    for path in PAGES[:-1]:
        response = await page.goto(daemon.url + path)
        assert response.status == 200, path
    await page.goto(daemon.url + "/tablets")
    assert "/elevate?next=/tablets" in page.url
    await enter_pin(page)
    await page.wait_for_url("**/tablets")
    await page.click("#new-code")
    assert re.fullmatch(r"\d{6}", await page.inner_text("#pairing-code strong"))
    await page.goto(daemon.url + "/shifts")
    await page.fill("input[name=counted]", "0")
    await page.click(".close-shift button[type=submit]")
    await page.wait_for_url(re.compile(r".*/shifts/\d+$"))
    if javascript:
        violations += await page.evaluate("window.cspViolations || []")
    assert violations == []
    await page.context.close()


async def test_pin_prompt_posts_the_manager_form_again(
        browser: Any, daemon: Daemon) -> None:  # noqa: F811
    await daemon.box.lan.set_pin(PIN, "test")
    page = await open_page(browser, daemon, TABLET, javascript=False)
    await tap_product(page, "Zimtschnecke")
    await page.click(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    await page.goto(daemon.url + "/shifts")
    await page.fill("input[name=counted]", "0")
    await page.click(".close-shift button[type=submit]")
    assert await page.locator("input[name=manager_pin]").count() == 1
    await enter_pin(page)
    await page.wait_for_url(re.compile(r".*/shifts/\d+$"))
    await page.context.close()
