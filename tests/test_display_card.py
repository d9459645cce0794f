"""The customer display during a card payment: a real daemon app, a simulated
ZVT terminal on a pty, the display's event stream over loopback HTTP (#8)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.display.model import Cohort, Slot
from daemon.display.payment import NOTES, TAP_CARD
from daemon.display.service import display_for
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.sim.zvt_terminal import ZvtSimBehaviour, ZvtTerminalSim
from tests.cardhelpers import running_zvt, shrink_zvt_timeouts, stock
from tests.conftest import make_config, pair, use_pages

pytestmark = pytest.mark.timeout(90)
EVENT_WAIT_S = 20.0  # generous: the machine may be loaded; no timing is asserted


@pytest.fixture(autouse=True)
def fast_zvt(monkeypatch: pytest.MonkeyPatch) -> None:
    shrink_zvt_timeouts(monkeypatch)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    # Slow steps keep each prompt on the terminal long enough to be seen.
    with running_zvt(tmp_path, ZvtSimBehaviour(step_delay_s=0.3)) as terminal:
        yield terminal


@pytest.fixture
async def till(aiohttp_client: Any, state_dir: Path,
               sim: ZvtTerminalSim) -> AsyncIterator[TestClient]:
    config = make_config(state_dir, terminal={
        "protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
        "response_timeout_s": 2})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    use_pages(client, token)
    yield client


async def next_event(resp: Any) -> tuple[str, str]:
    event, data = "", []
    while True:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event:
            return event, "\n".join(data)


async def events_until(resp: Any, kind: str, text: str = "") -> list[tuple[str, str]]:
    """Return the till-state events (not slots) up to one of kind with text."""
    seen: list[tuple[str, str]] = []

    async def read() -> None:
        while True:
            event, data = await next_event(resp)
            if event != "slot":
                seen.append((event, data))
            if event == kind and text in data:
                return

    await asyncio.wait_for(read(), EVENT_WAIT_S)
    return seen


async def card_checkout(till: TestClient, sku: str) -> str:
    """Put one product in the cart and pay by card on the till; return the page."""
    resp = await till.post("/till/cart", data={"action": "add", "sku": sku})
    assert resp.status == 200, await resp.text()
    page = await (await till.get("/till")).text()
    ref = page.split('name="client_ref" value="')[1].split('"')[0]
    resp = await till.post("/till/card", data={"client_ref": ref})
    assert resp.status == 200 and "/till/card/" in str(resp.url), await resp.text()
    return str(resp.url.path)


async def test_display_shows_tap_card_prompts_then_thanks(till: TestClient) -> None:
    resp = await till.get("/display/events?till=Till%201")
    assert (await next_event(resp))[0] == "idle"

    await card_checkout(till, "TEE")
    seen = await events_until(resp, "thanks", "Thank you!")
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "cart"  # the cart as it was rung up
    card = [data for kind, data in seen if kind == "card"]
    assert any(TAP_CARD in data for data in card), card
    assert any("PIN eingeben" in data for data in card), card  # the terminal's own
    assert all("Kräutertee" in data and "3,20 €" in data for data in card)
    assert kinds[-1] == "thanks" and kinds.index("thanks") > kinds.index("card")
    thanks = seen[-1][1]
    assert "3,20 €" in thanks and "Change" not in thanks

    page = await (await till.get("/display?till=Till%201")).text()
    assert "state-thanks" in page and "Thank you!" in page
    resp.close()


async def test_a_declined_card_shows_and_the_cart_comes_back(
        till: TestClient) -> None:
    resp = await till.get("/display/events?till=Till%201")
    assert (await next_event(resp))[0] == "idle"
    path = await card_checkout(till, "REFUSED")
    await events_until(resp, "card", NOTES["declined"])

    page = await (await till.get("/display?till=Till%201")).text()
    assert "state-card" in page and NOTES["declined"] in page
    assert 'http-equiv="refresh" content="2"' in page  # no-JS displays follow

    resp2 = await till.post(f"{path}/cancel-sale")
    assert resp2.status == 200
    seen = await events_until(resp, "cart", "Kerze rot")
    assert NOTES["declined"] not in seen[-1][1]
    resp.close()


async def test_a_display_of_another_till_sees_nothing(till: TestClient) -> None:
    other = await till.get("/display/events?till=Till%202")
    assert (await next_event(other))[0] == "idle"
    mine = await till.get("/display/events?till=Till%201")
    await card_checkout(till, "TEE")
    await events_until(mine, "thanks")

    async def any_state() -> str:
        while True:
            event, _ = await next_event(other)
            if event != "slot":
                return event

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(any_state(), 1.0)
    other.close()
    mine.close()


async def test_api_sales_thank_the_customer_on_the_till_display(
        till: TestClient) -> None:
    resp = await till.get("/display/events?till=Till%201")
    assert (await next_event(resp))[0] == "idle"
    body = {"client_ref": "api-cash-0001", "lines": [{"sku": "SEIFE", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 1000}}
    sold = await till.post("/api/v1/sales", json=body)
    assert sold.status == 201, await sold.text()
    seen = await events_until(resp, "thanks", "Thank you!")
    assert "5,90 €" in seen[-1][1] and "4,10 €" in seen[-1][1]  # total, change
    again = await till.post("/api/v1/sales", json=body)  # a retry: no new thanks
    assert again.status == 200

    refused = {"client_ref": "api-card-0001", "lines": [{"sku": "REFUSED",
                                                         "qty": 1}],
               "payment": {"method": "card"}}
    pending = await (await till.post("/api/v1/sales", json=refused)).json()
    await events_until(resp, "card", NOTES["declined"])
    paid = await till.post(f"/api/v1/sales/{pending['id']}/pay-cash",
                           json={"tendered_minor": 600})
    assert paid.status == 200, await paid.text()
    seen = await events_until(resp, "thanks", "Thank you!")
    assert "5,13 €" in seen[-1][1] and "0,87 €" in seen[-1][1]
    resp.close()


async def test_a_card_sale_converts_when_paid_not_when_refused(
        till: TestClient) -> None:
    for sku in ("TEE", "REFUSED"):
        resp = await till.post("/display/manage/creatives", data={
            "kind": "product", "sku": sku, "title": f"Promo {sku}"})
        assert resp.status == 200, await resp.text()
    display = display_for(till.app[STALLBOX])
    for creative in display.creatives:  # each slot shown once on this till
        slot = Slot("c:" + creative.id, "product", creative)
        display.count("screen-1", "Till 1", slot, Cohort(), display.clock())
    events = await till.get("/display/events?till=Till%201")
    assert (await next_event(events))[0] == "idle"

    path = await card_checkout(till, "REFUSED")
    await events_until(events, "card", NOTES["declined"])
    assert (await till.post(f"{path}/cancel-sale")).status == 200
    await till.post("/till/cart", data={"action": "clear"})  # the items stay
    await card_checkout(till, "TEE")
    await events_until(events, "thanks")
    events.close()

    await display.flush()
    stats = await (await till.get("/api/v1/display/stats")).json()
    converted = {row["slot"]: row["conversions"] for row in stats["items"]}
    by_sku = {c.sku: "c:" + c.id for c in display.creatives}
    assert converted[by_sku["TEE"]] == 1
    assert converted[by_sku["REFUSED"]] == 0
