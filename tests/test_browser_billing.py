"""Till options, split tenders, refunds and sync in a real browser (#4).

Debian's chromium through Playwright against the app on loopback, with
JavaScript on and off. A stall that rounds cash to 0,05 and sells coffee in
cups with a fee, a deposit and an own-container credit. Screenshots go to
STALLBOX_SCREENSHOTS (docs/screenshots/) only when it is set.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from daemon.sales.service import SaleRequest
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import make_config
from tests.test_browser import (  # noqa: F401
    PHONE,
    TABLET,
    Daemon,
    browser,
    open_page,
    shoot,
    shots,
    small_targets,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                 reason="Debian chromium is not installed")]
CATALOG = (
    "sku,name,price,tax_class,category,weight_g,packaging\n"
    "KAFFEE,Kaffee to go,\"3,20\",reduced,Getränke,,cup\n"
    "KERZE,Bienenwachskerze,\"9,99\",standard,Kerzen,220,\n"
    "HONIG,Blütenhonig 500 g,\"8,45\",reduced,Feinkost,500,\n"
    "BROT,Bauernbrot,\"4,52\",reduced,Brot,750,\n"
).encode()
BILLING: dict[str, dict[str, Any]] = {
    "cash": {"rounding_step": "0.05", "rounding_mode": "half_up"},
    "packaging": {"cup": {"label": "Becher", "fee": "0.20", "deposit": "1.00",
                          "own_container_credit": "0.10"}},
    "contribution": {"project": "Moorschutz Schwarzwald", "price_per_kg": "0.10"},
}


@pytest_asyncio.fixture(loop_scope="module")
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """Run the app on 127.0.0.1 with cash rounding, cups and a contribution."""
    state = tmp_path / "state"
    state.mkdir()
    runner = web.AppRunner(create_app(make_config(state, **BILLING)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    box = runner.app[STALLBOX]
    await box.import_catalog(CATALOG, skip_invalid=False)
    yield Daemon(f"http://{host}:{port}", box)
    await runner.cleanup()


def elevate(daemon: Daemon) -> None:
    """Count every paired tablet as manager-elevated, where the daemon has roles."""
    lan = getattr(daemon.box, "lan", None)
    for session in getattr(lan, "tokens", {}).values():
        session.elevated_until = time.monotonic() + 3600


async def tap(page: Any, name: str) -> None:
    before = await page.locator(".cart .lines .line").count()
    await page.locator("button.product", has_text=name).first.click()
    await page.locator(".cart .lines .line").nth(before).wait_for()


async def wait_total(page: Any, text: str) -> None:
    await page.locator("#total", has_text=text).wait_for()


@pytest.mark.parametrize(("javascript", "viewport", "name"),
                         [(True, TABLET, "tablet"), (False, PHONE, "phone")])
async def test_split_voucher_and_cash_sale(browser: Any, daemon: Daemon,  # noqa: F811
                                           shots: Path, javascript: bool,  # noqa: F811
                                           viewport: dict[str, int],
                                           name: str) -> None:
    page = await open_page(browser, daemon, viewport, javascript=javascript)
    await tap(page, "Kaffee to go")
    await tap(page, "Bienenwachskerze")
    await wait_total(page, "14,39")  # 3,20 + cup fee 0,20 + deposit 1,00 + 9,99
    line = page.locator(".cart .lines .line").nth(0)
    await line.locator("summary").click()
    await line.locator("button[value=own-container]").click()
    await wait_total(page, "13,09")  # own cup: no fee or deposit, 0,10 credit
    await page.locator("#options summary").click()
    await page.fill("#sale-discount-value", "10")
    await page.select_option("#options select[name=kind]", "percent")
    await page.locator("#options button[value=sale-discount]").click()
    await wait_total(page, "11,77")
    assert "1,32" in await page.inner_text("#sale-discount")
    await page.locator("#other-pay summary").click()
    await page.fill("#ref", "GUT-2026-0042")
    await page.fill("#amount", "5")
    await page.fill("#rest-cash", "10")
    assert await small_targets(page) == []
    await page.screenshot(path=str(shots / f"till-options-{name}.png"),
                          full_page=True)
    await page.click("#pay-other")
    await page.wait_for_url(re.compile(r".*/till/change/\w+$"))
    assert await page.inner_text("#change") == "3,25 €"  # 6,77 rounded to 6,75
    assert await page.inner_text("#change-rounding") == "−0,02 €"
    assert await small_targets(page) == []
    await shoot(page, shots / f"change-split-{name}.png")
    sales = await daemon.box.sales(None, 5)
    sale = await daemon.box.sale(sales[0]["id"])
    assert [(p["method"], p["amount_minor"]) for p in sale["payments"]] == [
        ("voucher", 500), ("cash", 675)]
    await page.context.close()


async def sell(daemon: Daemon, lines: tuple[tuple[str, int], ...]) -> str:
    outcome = await daemon.box.sell(SaleRequest(uuid.uuid4().hex, lines,
                                                tendered_minor=10_000, tablet="T"))
    return str(outcome.sale["id"])


@pytest.mark.parametrize(("javascript", "viewport", "name"),
                         [(True, TABLET, "tablet"), (False, PHONE, "phone")])
async def test_partial_refund(browser: Any, daemon: Daemon, shots: Path,  # noqa: F811
                              javascript: bool, viewport: dict[str, int],
                              name: str) -> None:
    sale_id = await sell(daemon, (("KERZE", 3), ("HONIG", 1)))
    page = await open_page(browser, daemon, viewport, javascript=javascript)
    elevate(daemon)
    await page.goto(f"{daemon.url}/sales/{sale_id}")
    await page.fill("#qty-0", "1")
    await page.fill("#refund-reason", "Docht zu kurz")
    await page.click("#refund-units")
    await page.wait_for_selector("#refund-done")
    refunds = page.locator(".refunds li")
    assert await refunds.count() == 1
    assert "10,00 €" in await refunds.first.inner_text()  # 9,99 in rounded cash
    rows = page.locator(".refund-lines li")
    assert "2 left" in await rows.nth(0).inner_text()
    assert await small_targets(page) == []
    await page.locator("#refunds").scroll_into_view_if_needed()
    await shoot(page, shots / f"sale-refund-{name}.png", top=False)
    await page.fill("#qty-0", "5")
    await page.click("#refund-units")
    await page.wait_for_selector("#refund-error")
    assert "only 3 sold" in await page.inner_text("#refund-error")
    await page.click("#refund-all")
    await page.wait_for_selector("text=Everything on this sale has been refunded")
    await page.context.close()


async def test_sync_and_shift_pages(browser: Any, daemon: Daemon,  # noqa: F811
                                    shots: Path) -> None:  # noqa: F811
    page = await open_page(browser, daemon, TABLET)
    elevate(daemon)
    await page.click("nav a[href='/sync']")
    await page.wait_for_url("**/sync")
    assert "Sync not set up" in await page.inner_text("#sync-state")
    assert await small_targets(page) == []
    await shoot(page, shots / "sync.png")
    await page.click("nav a[href='/shifts']")
    await page.wait_for_selector("#counted")  # the close form with counted cash
    assert "X report" in await page.inner_text("h1")
    await page.context.close()
