"""Real daemon events through sync: payouts, refunds, card sales, receipt checks."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.sim.zvt_terminal import ZvtTerminalSim
from tests.cardhelpers import settled, zvt_fixtures
from tests.conftest import auth, make_config, pair
from tests.synchelpers import STALL, Receiver, stall_receiver
from tests.test_sale_billing import BILLING, CATALOG

fast_zvt, sim = zvt_fixtures()


receiver = stall_receiver()


@pytest.fixture
async def stall(aiohttp_client: Any, state_dir: Path, sim: ZvtTerminalSim,
                receiver: Receiver) -> tuple[TestClient, str]:
    config = make_config(
        state_dir, stall={"currency": "CHF"},
        terminal={"protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
                  "response_timeout_s": 2},
        sync={"url": receiver.url, "stall_id": STALL, "interval_s": 3600}, **BILLING)
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token


async def post(stall: tuple[TestClient, str], path: str, data: dict[str, Any],
               status: int) -> dict[str, Any]:
    client, token = stall
    resp = await client.post(path, headers=auth(token), json=data)
    assert resp.status == status, await resp.text()
    return dict(await resp.json())


def sale(lines: list[tuple[str, int]], payment: dict[str, Any],
         **extra: Any) -> dict[str, Any]:
    return {"client_ref": uuid.uuid4().hex, "payment": payment,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in lines], **extra}


async def invoice(rec: Receiver, sale_id: str) -> dict[str, Any]:
    doc = await rec.storage.invoice(STALL, sale_id)
    assert doc is not None, f"no invoice for {sale_id}"
    return doc


def excerpt(state_dir: Path, sale_id: str) -> str:
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    try:
        row = conn.execute("SELECT receipt FROM sales WHERE id = ?",
                           (sale_id,)).fetchone()
    finally:
        conn.close()
    return str(json.loads(row[0])["excerpt"])


async def test_payouts_refunds_and_card_sales_arrive_as_invoices(
        stall: tuple[TestClient, str], receiver: Receiver, state_dir: Path) -> None:
    client, token = stall
    honey = await post(stall, "/api/v1/sales", sale(
        [("HONIG", 1)], {"method": "cash", "tendered_minor": 2000}), 201)
    payout = await post(stall, "/api/v1/sales", sale(
        [("KAFFEE", 1)], {"method": "cash", "tendered_minor": 0},
        deposit_returns=[{"packaging": "cup", "qty": 5}]), 201)
    refund = await post(stall, f"/api/v1/sales/{honey['id']}/refunds",
                        {"client_ref": uuid.uuid4().hex}, 201)
    card = await post(stall, "/api/v1/sales",
                      sale([("KERZE", 1)], {"method": "card"}), 202)
    assert (await settled(client, token, card["id"]))["status"] == "completed"

    status = await client.app[STALLBOX].sync.sync_now()
    assert (status["state"], status["backlog"]) == ("idle", 0), status

    got = await invoice(receiver, honey["id"])
    assert got["fees"] and got["fees_minor"] > 0  # the jar deposit
    assert got["carbon"] is not None and got["carbon"]["estimate"]
    assert got["net_minor"] + got["tax_minor"] + got["fees_minor"] >= 0
    assert [note["refund_id"] for note in got["credit_notes"]] == [refund["id"]]
    assert got["refunded_minor"] == refund["total_minor"]
    assert got["balance_minor"] == got["total_minor"] - refund["total_minor"]

    out = await invoice(receiver, payout["id"])
    assert (out["payout"], out["total_minor"]) == (True, payout["total_minor"])
    assert out["total_minor"] < 0

    paid = await invoice(receiver, card["id"])
    assert [p["method"] for p in paid["payments"]] == ["card"]
    kinds = [e["kind"] for e in paid["payment_events"]]
    assert kinds[0] == "payment.intent_created" and "payment.approved" in kinds

    info = await receiver.storage.get_stall(STALL)
    assert info is not None and info.alarm == ""
    assert info.last_seq == client.app[STALLBOX].journal.head_seq
    assert (await receiver.storage.verify_chain(STALL)) == (info.last_seq, "")


async def test_the_receiver_checks_receipts_against_what_it_received(
        stall: tuple[TestClient, str], receiver: Receiver, state_dir: Path) -> None:
    client, _token = stall
    sold = await post(stall, "/api/v1/sales", sale(
        [("SEIFE", 2)], {"method": "cash", "tendered_minor": 2000}), 201)
    text = excerpt(state_dir, sold["id"])
    async with aiohttp.ClientSession() as session:
        url = f"{receiver.url}/v1/receipts/verify"
        async with session.post(url, json={"receipt": text}) as resp:
            early = await resp.json()
        assert early["genuine"] is False and "not reached" in early["reason"]

        await client.app[STALLBOX].sync.sync_now()
        async with session.post(url, json={"receipt": text}) as resp:
            verdict = await resp.json()
        assert verdict["genuine"] is True, verdict
        async with session.post(f"{receiver.url}/verify",
                                data={"receipt": text}) as resp:
            page = await resp.text()
        assert resp.status == 200 and "Genuine:" in page
        assert "script" not in resp.headers["Content-Security-Policy"]

        parts = text.split("|")
        parts[5] = str(int(parts[5]) - 100)  # a lower total
        async with session.post(url, json={"receipt": "|".join(parts)}) as resp:
            forged = await resp.json()
        assert forged["genuine"] is False and "signature" in forged["reason"]
        async with session.post(f"{receiver.url}/verify",
                                data={"receipt": "<b>not a receipt</b>"}) as resp:
            assert resp.status == 422
            assert "<b>" not in await resp.text()
        async with session.get(f"{receiver.url}/verify") as resp:
            assert resp.status == 200 and "Check a receipt" in await resp.text()
