"""Gift cards: issued by a sale, spent as a tender, restored by refunds, replayed."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.sales.giftcards import code_hash, new_code, normalize_code
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from tests.conftest import auth, page_headers, pair
from tests.test_sale_billing import CATALOG, body, cash, chf_config

Chf = tuple[TestClient, str]


@pytest.fixture
async def chf(aiohttp_client: Any, state_dir: Path) -> Chf:
    """A CHF stall with the billing catalog (GUT is a 10,00 gift card)."""
    client = await aiohttp_client(create_app(chf_config(state_dir)))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token


async def call(chf: Chf, path: str, data: Any, status: int,
               token: str | None = None) -> dict[str, Any]:
    client, own = chf
    resp = await client.post(path, headers=auth(token or own), json=data)
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def issue(chf: Chf, qty: int = 1) -> tuple[dict[str, Any], list[str]]:
    sale = await call(chf, "/api/v1/sales", body([("GUT", qty)], cash(qty * 1000)),
                      201)
    return sale, [card["code"] for card in sale["gift_cards"]]


def spend(code: str, amount: int, tendered: int = 0) -> dict[str, Any]:
    card = {"method": "gift_card", "amount_minor": amount, "ref": code}
    if not tendered:
        return card
    return {"method": "split", "tenders": [
        card, {"method": "cash", "tendered_minor": tendered}]}


async def balance(chf: Chf, code: str) -> int:
    card = await call(chf, "/api/v1/gift-cards/balance", {"code": code}, 200)
    return int(card["balance_minor"])


def journal_text(state_dir: Path) -> str:
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    try:
        parts = [bytes(r[0]).decode() for r in conn.execute("SELECT body FROM events")]
        parts += [repr(r) for r in conn.execute("SELECT * FROM gift_cards")]
    finally:
        conn.close()
    return "\n".join(parts)


async def test_selling_a_gift_card_issues_a_code_kept_only_as_a_hash(
        chf: Chf, state_dir: Path) -> None:
    sale, (code,) = await issue(chf)

    assert sale["gift_cards"][0]["amount_minor"] == 1000
    plain = normalize_code(code)
    stored = journal_text(state_dir)
    assert plain not in stored and code not in stored
    assert code_hash(plain) in stored and plain[-4:] in stored
    client, token = chf
    receipt = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                      headers=auth(token))).text()
    assert code in receipt  # the receipt is the card
    again = await (await client.get(f"/api/v1/sales/{sale['id']}",
                                    headers=auth(token))).json()
    assert "gift_cards" not in again  # the code is answered once
    assert await balance(chf, code) == 1000


async def test_code_is_read_as_typed_lowercase_spaced_with_o_for_zero(
        chf: Chf) -> None:
    _, (code,) = await issue(chf)
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    card = await call(chf, "/api/v1/gift-cards/balance", {"code": typed}, 200)
    assert card["card"].endswith(normalize_code(code)[-4:])
    assert card["card"].startswith("****")


@pytest.mark.parametrize(("code", "status"), [
    ("", 422), ("ABC", 422), ("U" * 16, 422), ("A" * 41, 422),
    ("ÄÖÜ" * 5 + "A", 422), ("A\u0000" * 8, 422), (12345, 422), (None, 422),
    (["A" * 16], 422), ("0" * 16, 404),
])
async def test_balance_refuses_malformed_and_unknown_codes(
        chf: Chf, code: Any, status: int) -> None:
    problem = await call(chf, "/api/v1/gift-cards/balance", {"code": code}, status)
    assert problem["status"] == status


async def test_spending_decrements_and_never_goes_below_zero(chf: Chf) -> None:
    _, (code,) = await issue(chf)
    sale = await call(chf, "/api/v1/sales",
                      body([("SEIFE", 1)], spend(code, 550)), 201)
    assert sale["payments"][0]["method"] == "gift_card"
    assert await balance(chf, code) == 450
    refused = await call(chf, "/api/v1/sales",
                         body([("KERZE", 1)], spend(code, 500, 1000)), 409)
    assert "4,50" in refused["detail"] and "left" in refused["detail"]
    assert normalize_code(code) not in refused["detail"]
    assert await balance(chf, code) == 450


async def test_unknown_or_malformed_code_sells_nothing(chf: Chf) -> None:
    unknown = await call(chf, "/api/v1/sales",
                         body([("SEIFE", 1)], spend(new_code(), 550)), 422)
    assert "check the code" in unknown["detail"]
    bad = await call(chf, "/api/v1/sales", body([("SEIFE", 1)], spend("GC-1", 550)),
                     422)
    assert "16 letters" in bad["detail"]


async def test_a_payout_cannot_load_money_onto_a_gift_card(chf: Chf) -> None:
    _, (code,) = await issue(chf)
    returns = {**body([("SEIFE", 1)], spend(code, 50)),
               "deposit_returns": [{"packaging": "jar", "qty": 20}]}  # -10,00
    problem = await call(chf, "/api/v1/sales", returns, 422)
    assert "wrong sign" in problem["detail"]
    assert await balance(chf, code) == 1000


async def test_two_tablets_spending_the_last_of_a_card_one_wins(chf: Chf) -> None:
    _, (code,) = await issue(chf)
    client, token = chf
    other = await pair(client, "Till 2")

    async def attempt(tok: str) -> int:
        resp = await client.post("/api/v1/sales", headers=auth(tok), json=body(
            [("KERZE", 1)], spend(code, 800, 500)))
        return resp.status

    statuses = sorted(await asyncio.gather(attempt(token), attempt(other)))
    assert statuses == [201, 409]
    assert await balance(chf, code) == 200


async def test_a_refund_puts_the_gift_card_part_back(chf: Chf) -> None:
    _, (code,) = await issue(chf)
    sale = await call(chf, "/api/v1/sales",
                      body([("KERZE", 1), ("SEIFE", 1)], spend(code, 800, 1000)), 201)
    assert await balance(chf, code) == 200
    path = f"/api/v1/sales/{sale['id']}/refunds"
    first = await call(chf, path, {"client_ref": uuid.uuid4().hex,
                                   "lines": [{"line": 0, "qty": 1}]}, 201)
    back = [t for t in first["tenders"] if t["method"] == "gift_card"]
    assert back and await balance(chf, code) == 200 + back[0]["amount_minor"]
    await call(chf, path, {"client_ref": uuid.uuid4().hex}, 201)
    assert await balance(chf, code) == 1000  # never more than it was issued for


async def test_refunding_the_gift_card_voids_it_unless_spent(chf: Chf) -> None:
    sale, (kept, spent) = await issue(chf, 2)
    await call(chf, "/api/v1/sales", body([("SEIFE", 1)], spend(spent, 100, 1000)),
               201)
    path = f"/api/v1/sales/{sale['id']}/refunds"
    await call(chf, path, {"client_ref": uuid.uuid4().hex,
                           "lines": [{"line": 0, "qty": 1}]}, 201)
    card = await call(chf, "/api/v1/gift-cards/balance", {"code": kept}, 200)
    assert (card["status"], card["balance_minor"]) == ("voided", 0)
    refused = await call(chf, path, {"client_ref": uuid.uuid4().hex,
                                     "lines": [{"line": 0, "qty": 1}]}, 409)
    assert "spent" in refused["detail"]
    voided = await call(chf, "/api/v1/sales",
                        body([("SEIFE", 1)], spend(kept, 100, 1000)), 409)
    assert "voided" in voided["detail"]


async def test_z_report_shows_gift_cards_sold_spent_and_owed(chf: Chf) -> None:
    _, (code, _) = await issue(chf, 2)
    await call(chf, "/api/v1/sales", body([("SEIFE", 1)], spend(code, 550)), 201)
    client, token = chf
    report = await (await client.get("/api/v1/shifts/current",
                                     headers=auth(token))).json()
    cards = report["gift_cards"]
    assert (cards["issued_minor"], cards["redeemed_minor"]) == (2000, 550)
    assert (cards["cards"], cards["outstanding_minor"]) == (2, 1450)
    listing = await (await client.get("/api/v1/gift-cards",
                                      headers=auth(token))).json()
    assert listing["liability"]["outstanding_minor"] == 1450
    assert all(item["card"].startswith("****") for item in listing["items"])
    cashier = await pair(client, "Till 2", manager=False)
    resp = await client.get("/api/v1/gift-cards", headers=auth(cashier))
    assert resp.status == 403


async def test_till_page_checks_a_balance(chf: Chf) -> None:
    _, (code,) = await issue(chf)
    client, token = chf
    page = await client.get("/gift-cards", headers=page_headers(token))
    text = await page.text()
    csrf = text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    resp = await client.post("/gift-cards", headers=page_headers(token),
                             data={"csrf": csrf, "code": code})
    shown = await resp.text()
    assert resp.status == 200 and "10,00" in shown and code not in shown
    resp = await client.post("/gift-cards", headers=page_headers(token),
                             data={"csrf": csrf, "code": "<script>x</script>"})
    assert resp.status == 422 and "<script>x" not in await resp.text()


async def test_verify_replays_balances_and_names_an_edited_one(
        chf: Chf, state_dir: Path) -> None:
    _, (code,) = await issue(chf)
    sale = await call(chf, "/api/v1/sales",
                      body([("KERZE", 1)], spend(code, 999)), 201)
    await call(chf, f"/api/v1/sales/{sale['id']}/refunds",
               {"client_ref": uuid.uuid4().hex}, 201)
    await call(chf, "/api/v1/sales", body([("SEIFE", 1)], spend(code, 300, 500)), 201)
    client, _ = chf
    await client.close()
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    path = state_dir / JOURNAL_FILE
    result = verify_journal(path, device, observers=replay_observers())
    assert result.ok, result.reason
    conn = sqlite3.connect(path)
    seq = conn.execute("SELECT updated_seq FROM gift_cards").fetchone()[0]
    conn.execute("UPDATE gift_cards SET balance_minor = balance_minor + 100")
    conn.commit()
    conn.close()
    result = verify_journal(path, device, observers=replay_observers())
    assert result.bad_seq == seq and "gift_cards" in result.reason


async def test_a_journal_older_than_gift_cards_still_verifies(
        chf: Chf, state_dir: Path) -> None:
    await call(chf, "/api/v1/sales", body([("SEIFE", 1)], cash(2000)), 201)
    client, _ = chf
    await client.close()
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    path = state_dir / JOURNAL_FILE
    conn = sqlite3.connect(path)  # as a journal written before gift cards existed
    conn.execute("DROP TABLE gift_card_returns")
    conn.execute("DROP TABLE gift_cards")
    conn.commit()
    conn.close()
    result = verify_journal(path, device, observers=replay_observers())
    assert result.ok, result.reason


async def test_openapi_documents_the_balance_body(chf: Chf) -> None:
    client, token = chf
    spec = await (await client.get("/api/v1/openapi.json", headers=auth(token))).json()
    operation = spec["paths"]["/api/v1/gift-cards/balance"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "code" in schema["properties"]
