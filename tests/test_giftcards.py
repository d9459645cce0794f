"""Gift cards: issued by a sale, spent as a tender, restored by refunds, replayed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon import printing
from daemon.ereceipt.outbox import _receipt_text as ereceipt_text
from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.live.board import Offer
from daemon.live.service import live_for, with_live_prices
from daemon.runtime import JOURNAL_FILE
from daemon.sales.checkout import Product
from daemon.sales.giftcards import CODE_RULE, code_hash, new_code, normalize_code
from daemon.sales.queries import get_sale
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.printer import worker as worker_module
from device.sim.printer import SimulatedPrinter
from tests.conftest import DEMO_CSV, auth, make_config, page_headers, pair
from tests.livehelpers import deliver, head_seq, integration, rfc3339
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
    assert code not in receipt and plain not in receipt  # only the print has it
    assert f"****-****-****-{plain[-4:]}" in receipt
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


async def verify_an_edited_balance(chf: Chf, state_dir: Path,
                                   processes: int | None = None) -> tuple[int, Any]:
    """Spend a card, refund that sale, spend it again; check the journal
    verifies, then raise the card's balance behind the journal's back and
    return (the card's last seq, verify's verdict on the edited journal)."""
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
    result = verify_journal(path, device, observers=replay_observers(),
                            processes=processes)
    assert result.ok, result.reason
    conn = sqlite3.connect(path)
    seq = conn.execute("SELECT updated_seq FROM gift_cards").fetchone()[0]
    conn.execute("UPDATE gift_cards SET balance_minor = balance_minor + 100")
    conn.commit()
    conn.close()
    return seq, verify_journal(path, device, observers=replay_observers(),
                               processes=processes)


async def test_verify_replays_balances_and_names_an_edited_one(
        chf: Chf, state_dir: Path) -> None:
    seq, result = await verify_an_edited_balance(chf, state_dir)
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


# --- Face value: no discount, no live price (break-test H1) ---------------------

Demo = tuple[TestClient, str, str]  # client, a plain cashier token, live secret


@pytest.fixture
async def demo(stocked: TestClient) -> Demo:
    """The demo catalog (GUT-10, GUT-25 are gift cards), a cashier, live hooks."""
    cashier = await pair(stocked, "Till 2", manager=False)
    return stocked, cashier, await integration(stocked)


async def post(client: TestClient, token: str, path: str, data: Any,
               status: int) -> dict[str, Any]:
    resp = await client.post(path, headers=auth(token), json=data)
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def card_count(client: TestClient) -> int:
    conn = client.app[STALLBOX].config.state_dir / JOURNAL_FILE
    db = sqlite3.connect(conn)
    try:
        return int(db.execute("SELECT count(*) FROM gift_cards").fetchone()[0])
    finally:
        db.close()


FREE_CARDS = {"client_ref": "free-gc-0001", "lines": [
    {"sku": "GUT-25", "qty": 4, "discount": {"percent_bp": 10000}}],
    "payment": {"method": "cash", "tendered_minor": 0}}  # verbatim from the report


@pytest.mark.parametrize("request_body", [
    FREE_CARDS,
    {**FREE_CARDS, "client_ref": "half-gc-0001", "lines": [
        {"sku": "GUT-25", "qty": 1, "discount": {"percent_bp": 5000}}],
     "payment": {"method": "cash", "tendered_minor": 1250}},
    {**FREE_CARDS, "client_ref": "amount-gc-0001", "lines": [
        {"sku": "DES-LINZER", "qty": 1},
        {"sku": "GUT-10", "qty": 1, "discount": {"amount_minor": 1}}],
     "payment": {"method": "cash", "tendered_minor": 5000}},
])
async def test_a_line_discount_on_a_gift_card_is_refused_naming_the_line(
        demo: Demo, request_body: dict[str, Any]) -> None:
    client, cashier, _ = demo
    seq = head_seq(client)
    problem = await post(client, cashier, "/api/v1/sales", request_body, 422)
    index = next(i for i, ln in enumerate(request_body["lines"]) if "discount" in ln)
    assert problem["field"] == f"lines[{index}].discount"
    assert f"line {index}" in problem["detail"] and "GUT-" in problem["detail"]
    assert "face value" in problem["detail"]
    assert head_seq(client) == seq and card_count(client) == 0


async def test_a_sale_discount_is_allocated_only_over_the_other_lines(
        demo: Demo) -> None:
    client, cashier, _ = demo
    sale = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex,
        "lines": [{"sku": "GUT-25", "qty": 1}, {"sku": "DES-CREME-BRULEE", "qty": 2}],
        "discount": {"percent_bp": 5000},
        "payment": {"method": "cash", "tendered_minor": 5000}}, 201)
    assert sale["gift_cards"][0]["amount_minor"] == 2500
    assert sale["total_minor"] == 2500 + 450  # half of the 9,00 of crème brûlée
    card, creme = sale["lines"][0], sale["lines"][1]
    assert card.get("sale_discount_minor", 0) == 0 and card["amount_minor"] == 2500
    assert creme["sale_discount_minor"] == 450
    # An amount larger than the other lines is refused, not spread onto the card.
    problem = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex,
        "lines": [{"sku": "GUT-25", "qty": 1}, {"sku": "DES-CREME-BRULEE", "qty": 1}],
        "discount": {"amount_minor": 451},
        "payment": {"method": "cash", "tendered_minor": 5000}}, 422)
    assert "450" in problem["detail"]


@pytest.mark.parametrize("discount", [{"percent_bp": 5000}, {"amount_minor": 1},
                                      {"percent_bp": 1}])
async def test_a_sale_discount_on_gift_cards_alone_is_refused(
        demo: Demo, discount: dict[str, int]) -> None:
    client, cashier, _ = demo
    seq = head_seq(client)
    problem = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex,
        "lines": [{"sku": "GUT-25", "qty": 2}, {"sku": "GUT-10", "qty": 1}],
        "discount": discount,
        "payment": {"method": "cash", "tendered_minor": 6000}}, 422)
    assert problem["field"] == "discount" and "gift card" in problem["detail"]
    assert head_seq(client) == seq and card_count(client) == 0


def live_pin(sku: str, price: int, kind: str = "product.pinned") -> dict[str, Any]:
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "type": kind, "sku": sku,
                            "price_minor": price,
                            "until": rfc3339(time.time() + 600)}
    if kind == "flash.started":
        body["quantity"] = 5
    return body


@pytest.mark.parametrize("kind", ["product.pinned", "flash.started"])
async def test_a_live_pin_or_flash_of_a_gift_card_is_refused(
        demo: Demo, kind: str) -> None:
    client, cashier, secret = demo
    seq = head_seq(client)
    resp = await deliver(client, secret, live_pin("GUT-10", 1, kind))  # the report's
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    assert problem["field"] == "sku" and "gift card" in problem["detail"]
    assert head_seq(client) == seq  # nothing journaled
    unpin = {"id": uuid.uuid4().hex, "type": "product.unpinned", "sku": "GUT-10"}
    assert (await deliver(client, secret, unpin)).status == 202
    sale = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": "GUT-10", "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 1000}}, 201)
    assert sale["total_minor"] == 1000
    assert sale["gift_cards"][0]["amount_minor"] == 1000


async def test_a_live_offer_already_on_a_gift_card_never_applies(
        demo: Demo) -> None:
    """An offer journaled before the rule (or written around it) is ignored."""
    client, cashier, _ = demo
    box = client.app[STALLBOX]
    offer = Offer("GUT-10", "pin", "old-pin", "", 1, time.time() + 600, None, 0,
                  time.time())

    def write(tx: Any) -> None:
        tx.execute("INSERT OR REPLACE INTO live_offers (sku, kind, event_id,"
                   " stream_id, price_minor, until_s, cap, sold, t, seq)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                   (offer.sku, offer.kind, offer.event_id, offer.stream_id,
                    offer.price_minor, offer.until_s, offer.cap, offer.sold,
                    offer.t))

    await box.journal.transact(write)
    live_for(box).board.set_offer(offer)
    sale = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": "GUT-10", "qty": 2}],
        "payment": {"method": "cash", "tendered_minor": 2000}}, 201)
    assert sale["total_minor"] == 2000
    assert [c["amount_minor"] for c in sale["gift_cards"]] == [1000, 1000]
    assert "live" not in json.dumps(sale["lines"]).lower()
    quoted = with_live_prices(box, {"GUT-10": Product("GUT-10", "Gutschein", 1000,
                                                      "exempt", gift_card=True)},
                              [("GUT-10", 1)])
    assert quoted["GUT-10"].price_minor == 1000


# --- The code goes on paper once (break-test H2) -----------------------------

@pytest.fixture
def sim_printer(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "gc-printer") as sim:
        yield sim


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def plain_codes(state_dir: Path) -> int:
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    try:
        return int(conn.execute("SELECT count(*) FROM gift_card_codes").fetchone()[0])
    finally:
        conn.close()


def forms(code: str) -> tuple[str, str]:
    """The code as printed (grouped) and canonical (no dashes)."""
    plain = normalize_code(code)
    return code, plain


async def test_only_the_original_print_carries_the_code(
        aiohttp_client: Any, state_dir: Path, sim_printer: SimulatedPrinter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 0.05)
    config = make_config(state_dir, printer={"port": sim_printer.port_path,
                                             "baudrate": 115200})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    cashier = await pair(client, "Display", manager=False)
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    sale = await post(client, cashier, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": "GUT-25", "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 2500}}, 201)
    code = sale["gift_cards"][0]["code"]  # the selling tablet gets it, once
    grouped, plain = forms(code)
    mask = f"****-****-****-{plain[-4:]}"
    await wait_for(lambda: len(sim_printer.receipts) == 1)
    assert grouped in sim_printer.receipts[0] and "REPRINT" not in \
        sim_printer.receipts[0]

    seen = []
    for path in (f"/api/v1/sales/{sale['id']}/receipt",
                 f"/api/v1/sales/{sale['id']}"):
        seen.append(await (await client.get(path, headers=auth(cashier))).text())
    seen.append(await (await client.get(
        f"/sales/{sale['id']}", headers=page_headers(token))).text())
    box = client.app[STALLBOX]
    seen.append(await box.reader.run(lambda c: ereceipt_text(c, sale["id"])))
    resp = await client.post(f"/api/v1/sales/{sale['id']}/reprint",
                             headers=auth(cashier))
    assert resp.status == 202
    await wait_for(lambda: len(sim_printer.receipts) == 2)
    seen.append(sim_printer.receipts[1])
    assert "REPRINT" in sim_printer.receipts[1]
    for text in seen:
        assert grouped not in text and plain not in text
    for text in (seen[0], seen[2], seen[3], seen[4]):
        assert mask in text
    # The reprint's commit carried the original's print.done, which forgot it.
    await wait_for(lambda: plain_codes(state_dir) == 0)
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert mask in text and "25,00" in text


async def test_a_crash_before_print_done_reprints_the_code_once(
        chf: Chf, state_dir: Path) -> None:
    """A cut-off original's automatic REPRINT has the code; explicit ones never."""
    sale, (code,) = await issue(chf)
    grouped, plain = forms(code)
    client, _ = chf
    box = client.app[STALLBOX]
    job = (await box.reader.run(lambda c: get_sale(c, sale["id"])))["print_jobs"][0]

    def cut_off(tx: Any) -> None:
        printing._set_status(tx, job["id"], "printing", "print.started")
        printing._interrupt(tx, job["id"], "daemon stopped while printing", True)

    await box.journal.transact(cut_off)
    again = await box.reader.run(printing._next_pending)
    assert again is not None and again.reprint and again.automatic
    assert any(grouped in note for note in again.receipt.notes)
    explicit = await box.reader.run(
        lambda c: printing._job(c, (0, sale["id"], 1, 0)))
    assert not any(plain[-8:] in note for note in explicit.receipt.notes)
    assert plain_codes(state_dir) == 1
    store = printing.JournalJobStore(box)
    await store.mark_started(again.id)
    await store.mark_done(again.id)
    await box.journal.transact(lambda tx: None)  # the next commit carries it
    assert plain_codes(state_dir) == 0
    after = await box.reader.run(printing._next_pending)
    assert after is None
    gone = await box.reader.run(lambda c: printing._job(c, (again.id, sale["id"],
                                                            1, 1)))
    assert gone.receipt.notes == (f"Gift card ****-****-****-{plain[-4:]}: "
                                  "10,00 CHF",)


async def test_a_refund_slip_printed_keeps_an_unprinted_original_code(
        chf: Chf, state_dir: Path) -> None:
    """print.done of another job of the sale (a refund slip) forgets nothing."""
    sale, _ = await issue(chf, 2)
    await call(chf, f"/api/v1/sales/{sale['id']}/refunds",
               {"client_ref": uuid.uuid4().hex, "lines": [{"line": 0, "qty": 1}]},
               201)
    client, _ = chf
    box = client.app[STALLBOX]
    jobs = (await box.reader.run(lambda c: get_sale(c, sale["id"])))["print_jobs"]
    slip = jobs[-1]["id"]
    assert slip != jobs[0]["id"]
    store = printing.JournalJobStore(box)
    await store.mark_started(slip)
    await store.mark_done(slip)
    await box.journal.transact(lambda tx: None)
    assert plain_codes(state_dir) == 1


# --- One message for a malformed code (break-test LOW) -----------------------

@pytest.mark.parametrize("code", ["", "ABC", "A" * 41, "A" * 5000, "A\u0000" * 8,
                                  "\ud800" * 16, 12345, None, ["A" * 16]])
async def test_every_malformed_code_gets_the_same_message(
        chf: Chf, code: Any) -> None:
    problem = await call(chf, "/api/v1/gift-cards/balance", {"code": code}, 422)
    assert problem["detail"] == CODE_RULE and problem["field"] == "code"
    if isinstance(code, str):
        tender = await call(chf, "/api/v1/sales",
                            body([("SEIFE", 1)], spend(code[:64] or "X", 550)), 422)
        assert CODE_RULE in tender["detail"] or "payment.ref" in tender["detail"]
    client, token = chf
    page = await client.get("/gift-cards", headers=page_headers(token))
    csrf = (await page.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
    if isinstance(code, str) and "\ud800" not in code and len(code) <= 200:
        resp = await client.post("/gift-cards", headers=page_headers(token),
                                 data={"csrf": csrf, "code": code})
        assert resp.status == 422
        assert "16 letters and digits (0-9, A-Z without I, L, O, U)" in \
            await resp.text()
