"""The staff pages in a real browser: Debian's chromium driven by Playwright.

The daemon app runs on loopback inside the test; chromium is started once per
module. Screenshots go to a temporary directory, or to the directory named by
STALLBOX_SCREENSHOTS (docs/screenshots/ for the committed ones), because their
receipts carry the time and would change the tree on every run.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from daemon.runtime import Stallbox
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import DEMO_CSV, REPO, make_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TABLET = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MIN_TAP_PX = 44
HOSTILE = "<script>alert(1)</script>\"'\u202e{{7*7}}"
HOSTILE_CSV = (
    "sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    "X-HOSTILE,\"<img src=x onerror=alert(2)><script>alert(1)</script>\"\"'"
    "\u202e{{7*7}}\",\"1,00\",standard,Böse,,,no\n"
).encode()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not "
                       "installed at /usr/bin/chromium (apt-get install chromium)"),
]


@dataclass
class Daemon:
    """A running daemon app on loopback."""

    url: str
    box: Stallbox


class FakePrinter:
    """A printer worker stand-in whose state the test chooses."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def wake(self) -> None:
        """Jobs are not worked here; the page only reads the state."""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    """Start chromium once for all browser tests."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                            args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """Run the real app on 127.0.0.1 with the demo catalog and one hostile item."""
    state = tmp_path / "state"
    state.mkdir()
    runner = web.AppRunner(create_app(make_config(state)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    box = runner.app[STALLBOX]
    for data in (DEMO_CSV.read_bytes(), HOSTILE_CSV):
        await box.import_catalog(data, skip_invalid=False)
    yield Daemon(f"http://{host}:{port}", box)
    await runner.cleanup()


async def open_page(browser: Any, daemon: Daemon, viewport: dict[str, int], *,
                    javascript: bool = True) -> Any:
    """Open a fresh browser context and pair it through the pairing page."""
    context = await browser.new_context(viewport=viewport,
                                        java_script_enabled=javascript)
    page = await context.new_page()
    page.set_default_timeout(5000)
    await page.goto(daemon.url + "/till")
    assert page.url.endswith("/pair")
    await page.fill("input[name=code]", await daemon.box.issue_pairing_code())
    await page.fill("input[name=name]", "Till 1")
    await page.click("button[type=submit]")
    await page.wait_for_url("**/till")
    return page


async def tap_product(page: Any, name: str) -> None:
    before = await page.locator(".line").count()
    await page.locator("button.product", has_text=name).first.click()
    await page.locator(".line").nth(before).wait_for()


async def sell_two_items(page: Any) -> None:
    await tap_product(page, "Laugenbrezel")
    await tap_product(page, "Bärlauch-Pesto")
    assert await page.inner_text("#total") == "8,30 €"


async def small_targets(page: Any) -> list[str]:
    """Return visible controls smaller than MIN_TAP_PX, and any sideways scroll."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    if width > page.viewport_size["width"]:
        return [f"page is {width} px wide, wider than the screen"]
    found = await page.evaluate("""() => [...document.querySelectorAll(
        'a, button, input:not([type=hidden]), summary, select, textarea')]
      .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && r.height > 0)
      .map(([html, r]) => [html, r.width, r.height])""")
    return [f"{html} {w:.0f}x{h:.0f}" for html, w, h in found
            if w < MIN_TAP_PX or h < MIN_TAP_PX]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return where screenshots go (STALLBOX_SCREENSHOTS, relative to the repo)."""
    wanted = os.environ.get("STALLBOX_SCREENSHOTS")
    path = REPO / wanted if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


async def shoot(page: Any, path: Path, *, top: bool = True) -> None:
    if top:
        await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path))


async def test_sell_two_items_for_cash_on_a_tablet(browser: Any, daemon: Daemon,
                                                   shots: Path) -> None:
    page = await open_page(browser, daemon, TABLET)
    await page.evaluate("window.stallboxNoReload = true")
    await sell_two_items(page)
    assert await page.evaluate("window.stallboxNoReload === true")  # enhanced
    assert await small_targets(page) == []
    await shoot(page, shots / "till-tablet.png")
    await page.fill("#tendered", "20")
    await page.click(".given button")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    assert await page.inner_text("#change") == "11,70 €"
    size = await page.eval_on_selector("#change", "e => getComputedStyle(e).fontSize")
    assert float(size.removesuffix("px")) >= 64
    assert await small_targets(page) == []
    await shoot(page, shots / "change.png")
    await page.click("#new-sale")
    await page.wait_for_url("**/till")
    assert await page.locator(".line").count() == 0
    await page.context.close()


async def test_sell_two_items_with_javascript_off_on_a_phone(
        browser: Any, daemon: Daemon, shots: Path) -> None:
    page = await open_page(browser, daemon, PHONE, javascript=False)
    await sell_two_items(page)
    assert await small_targets(page) == []
    await shoot(page, shots / "till-phone.png")
    await page.click(".cartbar")
    await shoot(page, shots / "till-phone-cart.png", top=False)
    await page.locator(".quick button", has_text="10,00").click()
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    assert await page.inner_text("#change") == "1,70 €"
    size = await page.eval_on_selector("#change", "e => getComputedStyle(e).fontSize")
    assert float(size.removesuffix("px")) >= 64
    await shoot(page, shots / "change-phone.png")
    await page.click("a[href^='/sales/']")
    await page.wait_for_selector("pre.receipt")
    assert "Laugenbrezel" in await page.inner_text("pre.receipt")
    assert await small_targets(page) == []
    await page.context.close()


async def test_bad_amount_keeps_the_cart_in_the_browser(browser: Any,
                                                        daemon: Daemon) -> None:
    page = await open_page(browser, daemon, TABLET)
    await sell_two_items(page)
    await page.fill("#tendered", "zwanzig")
    await page.click(".given button")
    await page.wait_for_selector(".cart .error")
    assert "not a decimal amount" in await page.inner_text(".cart .error")
    assert await page.locator(".line").count() == 2
    assert await page.input_value("#tendered") == "zwanzig"
    await page.context.close()


async def test_hostile_product_name_does_not_run(browser: Any,
                                                 daemon: Daemon) -> None:
    page = await open_page(browser, daemon, TABLET)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(daemon.url + "/till?q=alert")
    product = page.locator("button.product").first
    assert "<script>alert(1)</script>" in await product.inner_text()
    await tap_product(page, "<script>")
    await page.click(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    await page.click("a[href^='/sales/']")
    await page.wait_for_selector("pre.receipt")
    receipt = await page.inner_text("pre.receipt")
    assert "<img src=x onerror=alert(2)><script" in receipt  # shown as text
    await page.goto(daemon.url + "/sales")
    await page.goto(daemon.url + "/till?category=B%C3%B6se")
    assert dialogs == []
    await page.context.close()


async def test_sale_detail_and_printer_pages(browser: Any, daemon: Daemon,
                                             shots: Path) -> None:
    page = await open_page(browser, daemon, TABLET)
    for name in ("Crème brûlée", "Duftkerze Sojawachs (Lavendel)", "Zimtschnecke"):
        await tap_product(page, name)
    await page.click(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    await page.click("a[href^='/sales/']")
    await page.click("text=Reprint receipt")
    await page.wait_for_selector("text=Reprint queued")
    assert await small_targets(page) == []
    await shoot(page, shots / "sale-detail.png")
    daemon.box.printer = FakePrinter({
        "state": "paper_out", "reason": "The paper roll is empty.",
        "action": "Open the cover, put in a new roll, close the cover."})
    await page.goto(daemon.url + "/printer")
    assert "Printer out of paper" in await page.inner_text("#printer-badge")
    assert await small_targets(page) == []
    await shoot(page, shots / "printer.png")
    await page.goto(daemon.url + "/sales")
    assert await small_targets(page) == []
    await shoot(page, shots / "sales.png")
    await page.context.close()


@pytest.mark.parametrize("javascript", [True, False])
async def test_double_tap_on_pay_makes_one_sale(browser: Any, daemon: Daemon,
                                                javascript: bool) -> None:
    page = await open_page(browser, daemon, TABLET, javascript=javascript)
    await tap_product(page, "Zimtschnecke")
    await page.dblclick(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    await page.wait_for_load_state()
    assert len(await daemon.box.sales(None, 10)) == 1
    await page.context.close()


async def test_wifi_drop_loses_nothing(browser: Any, daemon: Daemon) -> None:
    page = await open_page(browser, daemon, TABLET)
    await tap_product(page, "Zimtschnecke")
    await page.context.set_offline(True)
    await page.click(".quick button[value=exact]")
    await page.wait_for_selector(".offline-note")
    assert "Nothing was lost" in await page.inner_text(".offline-note")
    assert await page.locator(".line").count() == 1
    await page.context.set_offline(False)
    await page.click(".quick button[value=exact]")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    assert len(await daemon.box.sales(None, 10)) == 1
    await page.context.close()


async def test_search_narrows_the_products_as_you_type(browser: Any,
                                                        daemon: Daemon) -> None:
    from playwright.async_api import expect

    page = await open_page(browser, daemon, TABLET)
    await page.evaluate("window.stallboxNoReload = true")
    await page.fill("input[name=q]", "brez")
    # A locator, not wait_for_function: the page's CSP forbids eval (#6).
    await expect(page.locator("button.product")).to_have_count(1)
    assert "Laugenbrezel" in await page.inner_text("button.product")
    assert await page.evaluate("window.stallboxNoReload === true")
    await tap_product(page, "Laugenbrezel")
    assert page.url.endswith("/till?q=brez")
    await page.context.close()
