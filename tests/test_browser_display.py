"""The customer display in a real browser: Debian's chromium driven by Playwright,
a real daemon on loopback with a simulated ZVT terminal on a pty (#8).

One browser context is the till (a paired tablet), another the display facing
the customer (paired on its own, linked to the till by the till's name). The
tests assert what the customer sees, with generous waits and no timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from daemon.display import store
from daemon.display.model import Creative
from daemon.display.payment import TAP_CARD
from daemon.display.service import display_for
from daemon.journal.store import Tx
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.sim.zvt_terminal import ZvtSimBehaviour, ZvtTerminalSim
from tests.cardhelpers import running_zvt, shrink_zvt_timeouts
from tests.conftest import make_config
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TABLET, Daemon, tap_product
from tests.test_sale_billing import BILLING

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not "
                       "installed at /usr/bin/chromium (apt-get install chromium)"),
]
WAIT_MS = 30_000  # generous: a loaded machine; behaviour is asserted, not speed
NO_JS_WAIT_MS = 60_000  # a display without JS only learns on its next reload
DISPLAY_URL = "/display?till=Till%201&lang=en"
CATALOG = (
    "sku,name,price,tax_class,category,weight_g,packaging,carbon_factor,gift_card\n"
    "HONIG,Blütenhonig,\"14,68\",reduced,Feinkost,500,,honey,\n"
    "SEIFE,Naturseife,\"5,50\",standard,Kosmetik,100,,soap,\n"
).encode()
CREATIVE = Creative(id="waffeln", kind="house", title="Frische Waffeln",
                    text="Gleich nebenan, heiß aus dem Eisen")
# Collects what the customer read in the cart region, each time it changed.
WATCH_JS = """() => {
  window.seenStates = [];
  window.stallboxNoReload = true;
  const cart = document.getElementById('cart');
  new MutationObserver(() => window.seenStates.push(
      document.body.className + ' | ' + cart.innerText))
    .observe(cart, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture(autouse=True)
def fast_zvt(monkeypatch: pytest.MonkeyPatch) -> None:
    shrink_zvt_timeouts(monkeypatch)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    with running_zvt(tmp_path, ZvtSimBehaviour(step_delay_s=0.5)) as terminal:
        yield terminal


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                            args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(tmp_path: Path, sim: ZvtTerminalSim) -> AsyncIterator[Daemon]:
    """The real app on 127.0.0.1: a terminal, carbon estimates, one house promo."""
    state = tmp_path / "state"
    state.mkdir()
    config = make_config(state, carbon=BILLING["carbon"], terminal={
        "protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
        "response_timeout_s": 3})
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    box = runner.app[STALLBOX]
    await box.import_catalog(CATALOG, skip_invalid=False)
    display = display_for(box)

    def save(tx: Tx) -> None:
        store.save_creative(tx, CREATIVE)
        creatives = store.load_creatives(tx.conn)
        tx.after_commit(lambda: display.creatives_changed(creatives))

    await box.journal.transact(save)
    yield Daemon(f"http://{host}:{port}", box)
    await runner.cleanup()


async def paired(browser: Any, daemon: Daemon, name: str, *,
                 javascript: bool = True) -> Any:
    """Open a fresh context and pair it through the pairing page as name."""
    context = await browser.new_context(viewport=TABLET,
                                        java_script_enabled=javascript)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(daemon.url + "/till")
    assert page.url.endswith("/pair")
    await page.fill("input[name=code]", await daemon.box.issue_pairing_code())
    await page.fill("input[name=name]", name)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/till")
    return page


async def open_display(browser: Any, daemon: Daemon, *,
                       javascript: bool = True) -> tuple[Any, str]:
    """Pair a display, open it for Till 1; return it and its first HTML."""
    page = await paired(browser, daemon, "Display 1", javascript=javascript)
    response = await page.goto(daemon.url + DISPLAY_URL)
    assert response is not None and response.status == 200
    return page, await response.text()


async def test_first_paint_has_the_creative_and_the_cart_follows_the_till(
        browser: Any, daemon: Daemon) -> None:
    display, first_html = await open_display(browser, daemon)
    assert "Frische Waffeln" in first_html  # in the server's HTML: no ad fetching
    assert 'data-slot="c:waffeln"' in first_html
    assert await display.locator("#slot h2").inner_text() == "Frische Waffeln"
    await display.evaluate(WATCH_JS)

    till = await paired(browser, daemon, "Till 1")
    await tap_product(till, "Blütenhonig")
    cart = display.locator("#cart .cart")
    await cart.wait_for()
    await display.locator("#cart", has_text="Blütenhonig").wait_for()
    assert "14,68 €" in await cart.inner_text()
    assert "state-cart" in (await display.get_attribute("body", "class") or "")
    assert await display.evaluate("window.stallboxNoReload === true")  # by SSE
    await till.context.close()
    await display.context.close()


async def test_card_payment_shows_tap_card_then_the_thank_you(
        browser: Any, daemon: Daemon) -> None:
    display, _ = await open_display(browser, daemon)
    await display.evaluate(WATCH_JS)
    till = await paired(browser, daemon, "Till 1")
    await tap_product(till, "Naturseife")
    await display.locator("#cart", has_text="Naturseife").wait_for()

    await till.click("#pay-card")
    await display.locator(".thanks", has_text="Thank you!").wait_for()
    thanks = await display.locator("#cart").inner_text()
    assert "5,50 €" in thanks and "CO₂e" in thanks  # the estimate, as for cash
    seen: list[str] = await display.evaluate("window.seenStates")
    card = [state for state in seen if "state-card" in state]
    assert any(TAP_CARD in state or "PIN" in state for state in card), seen
    assert all("Naturseife" in state for state in card)
    first_thanks = next(i for i, s in enumerate(seen) if "Thank you!" in s)
    assert seen.index(card[0]) < first_thanks
    assert await display.evaluate("window.stallboxNoReload === true")
    await till.wait_for_url("**/till/card/*")
    await till.locator(".card-approved").wait_for()
    await till.context.close()
    await display.context.close()


async def test_without_javascript_the_display_reloads_itself_and_shows_the_cart(
        browser: Any, daemon: Daemon) -> None:
    display, first_html = await open_display(browser, daemon, javascript=False)
    assert "Frische Waffeln" in first_html
    assert '<meta http-equiv="refresh"' in first_html
    loads: list[str] = []
    display.on("load", lambda page: loads.append(page.url))

    till = await paired(browser, daemon, "Till 1")
    await tap_product(till, "Blütenhonig")
    await display.locator("#cart .cart", has_text="Blütenhonig").wait_for(
        timeout=NO_JS_WAIT_MS)
    assert loads, "the page showed the cart without reloading"
    assert "14,68 €" in await display.locator("#cart .total").inner_text()
    assert await display.locator("#slot .slot").count() == 1  # the slot stays
    await till.context.close()
    await display.context.close()
