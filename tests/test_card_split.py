"""A card part in a split tender, and the shift close running the terminal's
end-of-day: the daemon's HTTP API, a simulated ZVT terminal on a real pty, the
journal on disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.sim.zvt_terminal import ZvtTerminalSim
from device.terminal import zvt
from device.terminal import zvt_apdu as z
from tests.cardhelpers import (
    authorisations,
    event_kinds,
    running_zvt,
    settled,
    shrink_zvt_timeouts,
)
from tests.conftest import auth, make_config, pair

pytestmark = pytest.mark.timeout(90)
CATALOG = (b"sku,name,price,tax_class,category\n"
           b"KORB,Korb,\"14,68\",standard,Korb\n"
           b"TEE,Tee,\"3,20\",reduced,Tee\n")
CHF = 756


@pytest.fixture(autouse=True)
def fast_zvt(monkeypatch: pytest.MonkeyPatch) -> None:
    shrink_zvt_timeouts(monkeypatch)
    monkeypatch.setattr(zvt, "REOPEN_S", 1.0)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    with running_zvt(tmp_path) as terminal:
        yield terminal


@pytest.fixture
async def chf(aiohttp_client: Any, state_dir: Path,
              sim: ZvtTerminalSim) -> AsyncIterator[tuple[TestClient, str]]:
    """A CHF stall that rounds cash to 0,05, with a ZVT terminal."""
    config = make_config(
        state_dir, stall={"currency": "CHF"},
        cash={"rounding_step": "0.05", "rounding_mode": "half_up"},
        terminal={"protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
                  "response_timeout_s": 2})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    yield client, token


def split_body(ref: str, card_minor: int, tendered_minor: int,
               sku: str = "KORB") -> dict[str, Any]:
    return {"client_ref": ref, "lines": [{"sku": sku, "qty": 1}],
            "payment": {"method": "split", "tenders": [
                {"method": "card", "amount_minor": card_minor},
                {"method": "cash", "tendered_minor": tendered_minor}]}}


async def post(chf: tuple[TestClient, str], path: str, body: dict[str, Any],
               status: int) -> dict[str, Any]:
    client, token = chf
    resp = await client.post(path, json=body, headers=auth(token))
    assert resp.status == status, await resp.text()
    return dict(await resp.json())


# ---- split tenders ----------------------------------------------------------

async def test_card_and_cash_split_rounds_only_the_cash_and_waits_for_the_card(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = chf
    # The split: card 10,00 + cash for the rest of 14,68 -> 4,70.
    sale = await post(chf, "/api/v1/sales", split_body("split-0000001", 1000, 500),
                      202)
    assert sale["status"] == "pending"
    assert [(p["method"], p["amount_minor"], p["status"]) for p in sale["payments"]] \
        == [("card", 1000, "pending"), ("cash", 470, "pending")]
    assert (sale["rounding_minor"], sale["payments"][1]["change_minor"]) == (2, 30)
    assert sale["payment"]["amount_minor"] == 1000

    done = await settled(client, token, sale["id"])
    assert done["status"] == "completed"
    assert [p["status"] for p in done["payments"]] == ["approved", "approved"]
    auths = [a for a in sim.received if a[:2] == z.CMD_AUTHORISATION]
    assert auths == [z.authorisation(1000, CHF)]  # card exact, never rounded
    assert event_kinds(state_dir / JOURNAL_FILE).count("sale.completed") == 1
    report = await (await client.get("/api/v1/shifts/current",
                                     headers=auth(token))).json()
    assert report["cash"]["sales_minor"] == 470 and report["rounding_minor"] == 2


async def test_declined_card_part_leaves_the_sale_pending_then_cash_pays_it(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = chf
    # 10,13 is the simulator's "card refused" amount.
    sale = await post(chf, "/api/v1/sales", split_body("split-0000002", 1013, 500),
                      202)
    lost = await settled(client, token, sale["id"])
    assert lost["status"] == "pending"
    assert lost["payment"]["status"] == "declined"
    assert "nothing was charged" in lost["payment"]["next_step"]
    kinds = event_kinds(state_dir / JOURNAL_FILE)
    assert "sale.completed" not in kinds

    short = await post(chf, f"/api/v1/sales/{sale['id']}/pay-cash",
                       {"tendered_minor": 1000}, 422)
    assert short["field"] == "tendered_minor"
    done = await post(chf, f"/api/v1/sales/{sale['id']}/pay-cash",
                      {"tendered_minor": 1500}, 200)
    assert done["status"] == "completed"
    assert [(p["method"], p["amount_minor"], p["change_minor"])
            for p in done["payments"]] == [("cash", 1470, 30)]
    assert done["rounding_minor"] == 2
    again = await post(chf, f"/api/v1/sales/{sale['id']}/pay-cash",
                       {"tendered_minor": 1500}, 409)
    assert "completed" in again["detail"]
    assert authorisations(sim) == 1  # never charged twice
    assert event_kinds(state_dir / JOURNAL_FILE).count("sale.completed") == 1


async def test_cash_for_the_rest_is_refused_while_the_card_is_approved(
        chf: tuple[TestClient, str]) -> None:
    client, token = chf
    sale = await post(chf, "/api/v1/sales", split_body("split-0000003", 1000, 500),
                      202)
    await settled(client, token, sale["id"])
    refused = await post(chf, f"/api/v1/sales/{sale['id']}/pay-cash",
                         {"tendered_minor": 2000}, 409)
    assert "completed" in refused["detail"]


@pytest.mark.parametrize(("tenders", "field"), [
    ([{"method": "card", "amount_minor": 100}, {"method": "card",
                                                "amount_minor": 100}],
     "payment.tenders"),
    ([{"method": "card", "amount_minor": 100, "tendered_minor": 5},
      {"method": "cash", "tendered_minor": 2000}], "payment.tenders[0].tendered_minor"),
    ([{"method": "card", "amount_minor": 2000}, {"method": "cash",
                                                 "tendered_minor": 0}],
     "payment")])
async def test_bad_card_splits_name_the_field(
        chf: tuple[TestClient, str], tenders: list[dict[str, Any]],
        field: str) -> None:
    body = {"client_ref": "split-bad-0001", "lines": [{"sku": "KORB", "qty": 1}],
            "payment": {"method": "split", "tenders": tenders}}
    problem = await post(chf, "/api/v1/sales", body, 422)
    assert problem["field"] == field


# ---- shift close and the terminal's end-of-day ------------------------------

async def test_shift_close_runs_end_of_day_and_shows_it_balanced(
        chf: tuple[TestClient, str], state_dir: Path) -> None:
    client, token = chf
    sale = await post(chf, "/api/v1/sales", split_body("split-eod-0001", 1000, 500),
                      202)
    await settled(client, token, sale["id"])
    report = await post(chf, "/api/v1/shifts/close",
                        {"client_ref": "close-eod-0001", "counted_cash_minor": 470},
                        201)
    terminal = report["terminal"]
    assert terminal["state"] == "balanced" and terminal["differences"] == []
    assert terminal["terminal_totals"] == [{"brand": "Visa", "count": 1,
                                            "amount_minor": 1000}]
    kinds = event_kinds(state_dir / JOURNAL_FILE)
    assert kinds.index("terminal.end_of_day") < kinds.index("shift.closed")
    page = await (await client.get(f"/shifts/{report['seq']}",
                                   headers=auth(token))).text()
    assert "Terminal and journal agree." in page
    same = await post(chf, "/api/v1/shifts/close",
                      {"client_ref": "close-eod-0001", "counted_cash_minor": 470}, 200)
    assert same["seq"] == report["seq"]
    assert event_kinds(state_dir / JOURNAL_FILE).count("terminal.end_of_day") == 1


async def test_shift_close_shows_differences_with_the_transactions(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = chf
    sim.behaviour.silent_after = "status_info"  # booked on the terminal only
    sale = await post(chf, "/api/v1/sales", split_body("split-diff-001", 1000, 500),
                      202)
    lost = await settled(client, token, sale["id"])
    sim.wake()
    await post(chf, f"/api/v1/payments/{lost['payment']['id']}/resolve",
               {"outcome": "declined", "by": "Cleo"}, 200)
    await post(chf, f"/api/v1/sales/{sale['id']}/pay-cash", {"tendered_minor": 1500},
               200)
    await _terminal_ready(client, token)
    report = await post(chf, "/api/v1/shifts/close",
                        {"client_ref": "close-diff-001", "counted_cash_minor": 1470},
                        201)
    diff = report["terminal"]["differences"]
    assert report["terminal"]["state"] == "differences"
    assert diff[0]["difference_minor"] == 1000 and diff[0]["terminal_count"] == 1
    assert "payment.reconciliation" in event_kinds(state_dir / JOURNAL_FILE)
    page = await (await client.get(f"/shifts/{report['seq']}",
                                   headers=auth(token))).text()
    assert "Terminal and journal differ." in page


async def test_shift_closes_when_the_terminal_is_gone(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = chf
    body = {"client_ref": "cash-only-0001", "lines": [{"sku": "TEE", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}}
    await post(chf, "/api/v1/sales", body, 201)
    sim.stop()
    report = await post(chf, "/api/v1/shifts/close",
                        {"client_ref": "close-gone-001", "counted_cash_minor": 320},
                        201)
    assert report["terminal"]["state"] == "not run"
    assert report["terminal"]["reason"]
    page = await (await client.get(f"/shifts/{report['seq']}",
                                   headers=auth(token))).text()
    assert "Not run:" in page
    conn = sqlite3.connect(f"file:{state_dir / JOURNAL_FILE}?mode=ro", uri=True)
    assert conn.execute("SELECT COUNT(*) FROM shifts").fetchone()[0] == 1
    conn.close()


async def _terminal_ready(client: TestClient, token: str) -> None:
    for _ in range(200):
        status = await (await client.get("/api/v1/terminal",
                                         headers=auth(token))).json()
        if status["state"] == "ready":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"terminal not ready: {status}")


# ---- the documented bodies are the checked ones -----------------------------

@pytest.mark.parametrize(("path", "spec_name"), [
    ("/api/v1/payments", "RETRY_BODY"),
    ("/api/v1/payments/{id}/resolve", "RESOLVE_BODY"),
    ("/api/v1/sales/{id}/pay-cash", "PAY_CASH_BODY"),
])
async def test_openapi_documents_the_checked_payment_bodies(
        chf: tuple[TestClient, str], path: str, spec_name: str) -> None:
    from daemon.web import api_payments

    client, token = chf
    doc = await (await client.get("/api/v1/openapi.json", headers=auth(token))).json()
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == getattr(api_payments, spec_name).openapi()
    bad = await post(chf, path.replace("{id}", "x"), {"nope": 1}, 422)
    assert bad["field"]  # the checked spec names what is wrong


# ---- the till page: card + cash ---------------------------------------------


async def till_form(chf: tuple[TestClient, str], path: str,
                    **fields: str) -> tuple[int, str, str]:
    """Post a till form as a paired browser; return status, location, text."""
    from tests.conftest import use_pages

    client, token = chf
    use_pages(client, token)
    resp = await client.post(path, data=fields, allow_redirects=False)
    return resp.status, resp.headers.get("Location", ""), await resp.text()


async def cart_ref(chf: tuple[TestClient, str]) -> str:
    client, _ = chf
    status, _, _ = await till_form(chf, "/till/cart", action="add", sku="KORB")
    assert status == 303
    page = await (await client.get("/till")).text()
    return page.split('name="client_ref" value="', 1)[1].split('"', 1)[0]


async def test_till_splits_card_and_cash_and_rounds_only_the_cash(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim) -> None:
    ref = await cart_ref(chf)
    status, location, _ = await till_form(chf, "/till/card", client_ref=ref,
                                          card_amount="10,00", cash_given="5")
    assert (status, location.startswith("/till/card/")) == (303, True)
    client, token = chf
    intent = await (await client.get("/api/v1/payments/"
                                     + location.rsplit("/", 1)[1],
                                     headers=auth(token))).json()
    sale = await settled(client, token, intent["sale_id"])
    methods = {p["method"]: p for p in sale["payments"]}
    assert methods["card"]["amount_minor"] == 1000
    assert (methods["cash"]["amount_minor"], sale["rounding_minor"]) == (470, 2)
    assert authorisations(sim) == 1


@pytest.mark.parametrize(("card", "cash", "words"), [
    ("abc", "5", "card amount"), ("0", "20", "more than zero"),
    ("10,00", "-1", "cash given"), ("10,001", "5", "card amount")])
async def test_till_card_split_refuses_bad_amounts(
        chf: tuple[TestClient, str], sim: ZvtTerminalSim, card: str, cash: str,
        words: str) -> None:
    ref = await cart_ref(chf)
    status, _, text = await till_form(chf, "/till/card", client_ref=ref,
                                      card_amount=card, cash_given=cash)
    assert status == 422
    assert words in text
    assert authorisations(sim) == 0


async def _verdict(client: TestClient, token: str, sale_id: str) -> dict[str, Any]:
    """Check the receipt's QR excerpt as a customer would, on the public API."""
    text = await (await client.get(f"/api/v1/sales/{sale_id}/receipt",
                                   headers=auth(token))).text()
    box = client.app[STALLBOX]
    raw = await box.reader.run(lambda c: c.execute(
        "SELECT receipt FROM sales WHERE id = ?", (sale_id,)).fetchone()[0])
    excerpt = json.loads(raw)["excerpt"]
    assert excerpt.startswith("SB1|") and excerpt[:40] in text
    resp = await client.post("/api/v1/receipts/verify", json={"receipt": excerpt})
    return dict(await resp.json())


async def test_split_and_cash_for_the_rest_receipts_carry_genuine_excerpts(
        chf: tuple[TestClient, str], state_dir: Path) -> None:
    client, token = chf
    split = await post(chf, "/api/v1/sales", split_body("split-qr-00001", 1000, 500),
                       202)
    assert (await settled(client, token, split["id"]))["status"] == "completed"
    assert (await _verdict(client, token, split["id"]))["genuine"]
    refused = await post(chf, "/api/v1/sales",
                         split_body("split-qr-00002", 1013, 500), 202)
    await settled(client, token, refused["id"])
    await post(chf, f"/api/v1/sales/{refused['id']}/pay-cash",
               {"tendered_minor": 1500}, 200)
    assert (await _verdict(client, token, refused["id"]))["genuine"]
    await client.close()
    from daemon.cli import main

    assert main(["verify", "--state", str(state_dir)]) == 0
