"""A gift card in a card sale: reserved by sale.pending, kept by the approval or
the cash for the rest, given back by sale.cancelled; verify replays each.
The daemon's HTTP API, a simulated ZVT terminal on a real pty, the journal on
disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from device.sim.zvt_terminal import ZvtTerminalSim
from tests.cardhelpers import (
    authorisations,
    event_kinds,
    settled,
    zvt_fixtures,
)
from tests.conftest import auth, make_config, pair
from tests.test_sale_billing import BILLING, CATALOG, body, cash

pytestmark = pytest.mark.timeout(90)
Chf = tuple[TestClient, str]


fast_zvt, sim = zvt_fixtures()


@pytest.fixture
async def chf(aiohttp_client: Any, state_dir: Path,
              sim: ZvtTerminalSim) -> AsyncIterator[Chf]:
    """A CHF stall rounding cash to 0,05 (GUT is a 10,00 gift card), with ZVT."""
    config = make_config(
        state_dir, stall={"currency": "CHF"},
        terminal={"protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
                  "response_timeout_s": 2}, **BILLING)
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    yield client, token


async def call(chf: Chf, path: str, data: Any, status: int) -> dict[str, Any]:
    client, token = chf
    resp = await client.post(path, headers=auth(token), json=data)
    assert resp.status == status, await resp.text()
    return dict(await resp.json())

async def declined_split(chf: Chf) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A new 10,00 gift card, then a sale paying 3,00 by it, 5,13 by card and
    2,00 cash; the card part declined (the simulator refuses amounts ending in
    13 cents). Return the card's code, the 202 answer and the settled sale."""
    client, token = chf
    code = await new_card(chf)
    sale = await call(chf, "/api/v1/sales",
                      body([("KERZE", 1)], split(code, 300, 513, 200)), 202)
    return code, sale, await settled(client, token, sale["id"])



async def new_card(chf: Chf) -> str:
    sale = await call(chf, "/api/v1/sales", body([("GUT", 1)], cash(1000)), 201)
    return str(sale["gift_cards"][0]["code"])


async def balance(chf: Chf, code: str) -> int:
    card = await call(chf, "/api/v1/gift-cards/balance", {"code": code}, 200)
    return int(card["balance_minor"])


def split(code: str, gift: int, card: int, tendered: int) -> dict[str, Any]:
    return {"method": "split", "tenders": [
        {"method": "gift_card", "amount_minor": gift, "ref": code},
        {"method": "card", "amount_minor": card},
        {"method": "cash", "tendered_minor": tendered}]}


def paid(sale: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(p["method"], p["amount_minor"], p["status"]) for p in sale["payments"]]


def verify(state_dir: Path) -> Any:
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    return verify_journal(state_dir / JOURNAL_FILE, device,
                          observers=replay_observers())


def edit_balance_and_verify(state_dir: Path) -> None:
    """Verify passes, then an edited balance is named by its card's last move."""
    assert verify(state_dir).ok, verify(state_dir).reason
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    seq = conn.execute("SELECT updated_seq FROM gift_cards").fetchone()[0]
    conn.execute("UPDATE gift_cards SET balance_minor = balance_minor - 1")
    conn.commit()
    conn.close()
    result = verify(state_dir)
    assert not result.ok
    assert result.bad_seq == seq and "gift_cards" in result.reason


def events(state_dir: Path, kind: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    try:
        rows = conn.execute("SELECT body FROM events WHERE kind = ? ORDER BY seq",
                            (kind,)).fetchall()
    finally:
        conn.close()
    return [json.loads(bytes(r[0]))["data"] for r in rows]


async def test_card_gift_card_and_cash_approved_takes_the_balance_once(
        chf: Chf, sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = chf
    code = await new_card(chf)
    # KERZE 9,99: gift card 3,00 + card 5,00 + cash 1,99 rounded to 2,00.
    sale = await call(chf, "/api/v1/sales",
                      body([("KERZE", 1)], split(code, 300, 500, 500)), 202)
    assert sale["status"] == "pending"
    assert paid(sale) == [("gift_card", 300, "pending"), ("card", 500, "pending"),
                          ("cash", 200, "pending")]
    assert code not in json.dumps(sale)  # the code is masked in the answer
    done = await settled(client, token, sale["id"])
    assert done["status"] == "completed"
    assert paid(done) == [("gift_card", 300, "approved"),
                          ("card", 500, "approved"), ("cash", 200, "approved")]
    assert done["payments"][2]["change_minor"] == 300
    assert await balance(chf, code) == 700  # taken once: pending, not again
    assert authorisations(sim) == 1
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert code[-4:] in text and code not in text
    completed = events(state_dir, "sale.completed")[-1]
    assert completed["gift_cards"]["redeemed"][0]["amount_minor"] == 300
    report = await (await client.get("/api/v1/shifts/current",
                                     headers=auth(token))).json()
    assert report["gift_cards"]["redeemed_minor"] == 300
    assert report["gift_cards"]["outstanding_minor"] == 700
    await client.close()
    edit_balance_and_verify(state_dir)


async def test_declined_then_cancelled_gives_the_balance_back(
        chf: Chf, state_dir: Path) -> None:
    client, token = chf
    code, sale, lost = await declined_split(chf)
    assert (lost["status"], lost["payment"]["status"]) == ("pending", "declined")
    assert await balance(chf, code) == 700  # still held for this sale
    await call(chf, f"/api/v1/payments/{lost['payment']['id']}/cancel-sale", {},
               200)
    assert await balance(chf, code) == 1000
    cancelled = events(state_dir, "sale.cancelled")
    assert [c["amount_minor"] for c in cancelled[0]["gift_cards"]["released"]] \
        == [300]
    assert code not in json.dumps(cancelled)
    # Cancelled once: a second cancel gives nothing back twice.
    again = await call(chf, f"/api/v1/payments/{lost['payment']['id']}/cancel-sale",
                       {}, 409)
    assert "cancelled" in again["detail"]
    assert await balance(chf, code) == 1000
    report = await (await client.get("/api/v1/shifts/current",
                                     headers=auth(token))).json()
    assert report["gift_cards"]["redeemed_minor"] == 0
    await client.close()
    edit_balance_and_verify(state_dir)


async def test_declined_then_cash_for_the_rest_keeps_the_reservation(
        chf: Chf, state_dir: Path) -> None:
    client, token = chf
    code, sale, lost = await declined_split(chf)
    assert lost["payment"]["status"] == "declined"
    done = await call(chf, f"/api/v1/sales/{sale['id']}/pay-cash",
                      {"tendered_minor": 1000}, 200)
    assert done["status"] == "completed"
    # 9,99 - 3,00 = 6,99 in cash, rounded to 7,00.
    assert [(p["method"], p["amount_minor"]) for p in done["payments"]] == [
        ("gift_card", 300), ("cash", 700)]
    assert await balance(chf, code) == 700
    assert event_kinds(state_dir / JOURNAL_FILE).count("sale.completed") == 2
    await client.close()
    edit_balance_and_verify(state_dir)


async def test_a_reserved_balance_cannot_be_spent_again(chf: Chf) -> None:
    client, token = chf
    code, sale, _ = await declined_split(chf)  # declined: the sale waits
    other = await pair(client, "Till 2")
    resp = await client.post("/api/v1/sales", headers=auth(other), json=body(
        [("KERZE", 1)], {"method": "gift_card", "amount_minor": 800, "ref": code}))
    assert resp.status == 409, await resp.text()
    assert "7,00 CHF left" in (await resp.json())["detail"]
    assert await balance(chf, code) == 700


async def test_a_card_sale_and_a_cash_sale_race_for_one_balance(
        chf: Chf, state_dir: Path) -> None:
    client, token = chf
    code = await new_card(chf)
    other = await pair(client, "Till 2")
    card_sale = body([("KERZE", 1)], split(code, 600, 300, 100))
    cash_sale = body([("KERZE", 1)], {"method": "split", "tenders": [
        {"method": "gift_card", "amount_minor": 600, "ref": code},
        {"method": "cash", "tendered_minor": 400}]})
    answers = await asyncio.gather(
        client.post("/api/v1/sales", headers=auth(token), json=card_sale),
        client.post("/api/v1/sales", headers=auth(other), json=cash_sale))
    statuses = sorted(r.status for r in answers)
    assert statuses in ([201, 409], [202, 409]), statuses
    assert await balance(chf, code) == 400
    for resp in answers:
        if resp.status == 202:
            await settled(client, token, (await resp.json())["id"])
    await client.close()
    assert verify(state_dir).ok


async def test_gift_cards_are_still_sold_for_cash_only(chf: Chf) -> None:
    problem = await call(chf, "/api/v1/sales", body(
        [("GUT", 1)], {"method": "card"}), 422)
    assert "cash" in problem["detail"]


@pytest.mark.parametrize("ref", ["", "x" * 65, "ABCD-EFGH", "'; DROP TABLE--",
                                 "0000-0000-0000-0000"])
async def test_bad_gift_card_codes_in_a_card_sale_sell_nothing(
        chf: Chf, state_dir: Path, ref: str) -> None:
    client, _ = chf
    problem = await call(chf, "/api/v1/sales",
                         body([("KERZE", 1)], split(ref, 300, 500, 500)), 422)
    assert "field" in problem
    assert "sale.pending" not in event_kinds(state_dir / JOURNAL_FILE)


async def test_more_than_the_balance_in_a_card_sale_is_409(
        chf: Chf, state_dir: Path) -> None:
    code = await new_card(chf)
    problem = await call(chf, "/api/v1/sales", body(
        [("HONIG", 1)], split(code, 1100, 300, 500)), 409)
    assert "10,00 CHF left" in problem["detail"]
    assert "sale.pending" not in event_kinds(state_dir / JOURNAL_FILE)
    assert await balance(chf, code) == 1000
