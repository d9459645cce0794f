"""Card refunds through the terminal, and refund slips: the daemon's HTTP API, a
simulated ZVT terminal and receipt printer on real ptys, the journal on disk."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from device.printer import worker as worker_module
from device.sim.printer import SimulatedPrinter
from device.sim.zvt_terminal import ZvtTerminalSim
from device.terminal import zvt
from device.terminal import zvt_apdu as z
from tests.cardhelpers import (
    PAYMENT_WAIT_S,
    event_kinds,
    running_zvt,
    settled,
    shrink_zvt_timeouts,
    stock,
)
from tests.conftest import auth, make_config, pair

pytestmark = pytest.mark.timeout(90)
ALL = "all"


@pytest.fixture(autouse=True)
def fast_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink driver timeouts and printer backoff so faults show within seconds."""
    shrink_zvt_timeouts(monkeypatch)
    monkeypatch.setattr(zvt, "REOPEN_S", 1.0)
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(worker_module, "BACKOFF_MAX_S", 0.2)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    with running_zvt(tmp_path) as terminal:
        yield terminal


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "by-id-prn") as sim:
        yield sim


@pytest.fixture
async def shop(aiohttp_client: Any, state_dir: Path, sim: ZvtTerminalSim,
               printer: SimulatedPrinter) -> AsyncIterator[tuple[TestClient, str]]:
    config = make_config(
        state_dir, printer={"port": printer.port_path, "baudrate": 115200},
        terminal={"protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
                  "response_timeout_s": 2})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    yield client, token


async def paid(shop: tuple[TestClient, str], ref: str, sku: str = "TEE",
               qty: int = 1) -> dict[str, Any]:
    """Sell by card and wait for the approval."""
    client, token = shop
    body = {"client_ref": ref, "lines": [{"sku": sku, "qty": qty}],
            "payment": {"method": "card"}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 202, await resp.text()
    sale = await settled(client, token, (await resp.json())["id"])
    assert sale["status"] == "completed", sale
    return sale


async def refund(shop: tuple[TestClient, str], sale_id: str, ref: str,
                 lines: Any = ALL, status: int = 202) -> dict[str, Any]:
    client, token = shop
    body: dict[str, Any] = {"client_ref": ref}
    if lines != ALL:
        body["lines"] = lines
    resp = await client.post(f"/api/v1/sales/{sale_id}/refunds", json=body,
                             headers=auth(token))
    assert resp.status == status, await resp.text()
    return dict(await resp.json())


async def refund_done(shop: tuple[TestClient, str], refund_id: str) -> dict[str, Any]:
    """Poll the refund until its card part is no longer pending."""
    client, token = shop
    deadline = time.monotonic() + PAYMENT_WAIT_S
    while True:
        got = await (await client.get(f"/api/v1/refunds/{refund_id}",
                                      headers=auth(token))).json()
        if got["status"] != "pending":
            return dict(got)
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.02)


def commands(sim: ZvtTerminalSim, command: bytes) -> list[bytes]:
    return [apdu for apdu in sim.received if apdu[:2] == command]


def journal_rows(state_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{state_dir / JOURNAL_FILE}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# ---- reversal and refund ----------------------------------------------------

async def test_full_refund_in_the_open_batch_is_a_reversal_with_one_slip(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path,
        printer: SimulatedPrinter) -> None:
    sale = await paid(shop, "rev-sale-0001")
    await wait_for(lambda: len(printer.receipts) == 1)
    pending = await refund(shop, sale["id"], "rev-refund-01")
    assert pending["status"] == "pending"
    assert pending["card"]["kind"] == "reversal"

    done = await refund_done(shop, pending["id"])
    assert done["status"] == "completed"
    assert done["card_refund"]["outcome"] == "approved"
    assert done["tenders"] == [{"method": "card", "amount_minor": 320, "ref": ""}]
    receipt_no = sale["payment"]["card"]["receipt_no"]
    assert commands(sim, z.CMD_REVERSAL) == [z.reversal("000000", receipt_no)]
    assert commands(sim, z.CMD_REFUND) == []
    kinds = [k for k in event_kinds(state_dir / JOURNAL_FILE)
             if k.startswith(("refund.", "sale.refunded"))]
    assert kinds == ["refund.pending", "refund.intent_created", "refund.approved",
                     "sale.refunded"]

    await wait_for(lambda: len(printer.receipts) == 2)
    slip = printer.receipts[1]
    assert "*** REFUND ***" in slip and f"of sale {sale['id']}" in slip
    assert "Back to card" in slip and "REFUNDED EUR" in slip and "VAT" in slip
    await asyncio.sleep(0.5)
    assert len(printer.receipts) == 2  # exactly once


async def test_refund_slip_is_reprintable_marked_reprint(
        shop: tuple[TestClient, str], printer: SimulatedPrinter) -> None:
    client, token = shop
    sale = await paid(shop, "slip-sale-001")
    done = await refund_done(shop, (await refund(shop, sale["id"], "slip-ref-0001"))
                             ["id"])
    await wait_for(lambda: len(printer.receipts) == 2)
    resp = await client.post(f"/api/v1/refunds/{done['id']}/reprint",
                             headers=auth(token))
    assert resp.status == 202, await resp.text()
    await wait_for(lambda: len(printer.receipts) == 3)
    assert "REPRINT" in printer.receipts[2] and "REFUND" in printer.receipts[2]
    missing = await client.post("/api/v1/refunds/nope/reprint", headers=auth(token))
    assert missing.status == 404


async def test_partial_refund_uses_the_terminal_refund_with_the_amount(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim) -> None:
    sale = await paid(shop, "part-sale-001", "SEIFE", 2)
    first = await refund(shop, sale["id"], "part-ref-0001", [{"line": 0, "qty": 1}])
    assert first["card"] == {"intent_id": first["card"]["intent_id"],
                             "kind": "refund", "amount_minor": 590}
    assert (await refund_done(shop, first["id"]))["status"] == "completed"
    assert commands(sim, z.CMD_REFUND) == [z.refund("000000", 590, 978)]

    rest = await refund(shop, sale["id"], "part-ref-0002")
    assert rest["card"]["kind"] == "refund"  # partly paid back: no reversal
    assert (await refund_done(shop, rest["id"]))["status"] == "completed"
    over = await refund(shop, sale["id"], "part-ref-0003", status=409)
    assert "refunded in full" in over["detail"]


async def test_refund_after_end_of_day_is_a_refund_not_a_reversal(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim) -> None:
    client, token = shop
    sale = await paid(shop, "eod-sale-0001")
    resp = await client.post("/api/v1/terminal/end-of-day", headers=auth(token))
    assert resp.status == 200, await resp.text()
    pending = await refund(shop, sale["id"], "eod-refund-01")
    assert pending["card"]["kind"] == "refund"
    assert (await refund_done(shop, pending["id"]))["status"] == "completed"


# ---- failures: nothing lost, nothing doubled --------------------------------

async def test_declined_refund_gives_the_units_back(
        shop: tuple[TestClient, str], state_dir: Path) -> None:
    # Two candles of 5,13 are paid (10,26); one back is 5,13: the simulator's
    # "card refused" cents, so the terminal declines the refund.
    sale = await paid(shop, "decl-sale-001", "REFUSED", 2)
    failed = await refund_done(shop, (await refund(
        shop, sale["id"], "decl-ref-0001", [{"line": 0, "qty": 1}]))["id"])
    assert failed["status"] == "failed"
    assert "declined" in failed["failed_because"]
    assert "sale.refunded" not in event_kinds(state_dir / JOURNAL_FILE)
    assert journal_rows(state_dir, "SELECT * FROM refund_lines") == []

    whole = await refund(shop, sale["id"], "decl-ref-0002")  # both units free
    assert whole["card"]["amount_minor"] == 1026


async def test_units_of_a_pending_refund_are_taken(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim) -> None:
    sale = await paid(shop, "race-sale-001")
    # The terminal takes its time with the reversal, so the refund is still
    # pending while the next two requests arrive, however loaded the machine.
    sim.behaviour.step_delay_s = 0.5
    first = await refund(shop, sale["id"], "race-ref-0001")
    second = await refund(shop, sale["id"], "race-ref-0002", status=409)
    assert "refunded in full" in second["detail"]
    again = await refund(shop, sale["id"], "race-ref-0001", status=202)
    assert again["id"] == first["id"]  # same client_ref, same refund
    assert (await refund_done(shop, first["id"]))["status"] == "completed"
    assert len(commands(sim, z.CMD_REVERSAL)) == 1


async def test_link_drop_during_refund_is_resolved_by_the_terminal(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = shop
    sale = await paid(shop, "drop-sale-001")
    sim.behaviour.drop_link_after = "status_info"
    pending = await refund(shop, sale["id"], "drop-ref-0001")
    deadline = time.monotonic() + PAYMENT_WAIT_S
    while True:
        got = await (await client.get(f"/api/v1/refunds/{pending['id']}",
                                      headers=auth(token))).json()
        if got["status"] == "completed":
            break
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)
    assert got["card_refund"]["resolved_by"] == "terminal (last-transaction enquiry)"
    kinds = event_kinds(state_dir / JOURNAL_FILE)
    assert "refund.unknown" in kinds and kinds.count("sale.refunded") == 1
    assert len(commands(sim, z.CMD_REVERSAL)) == 1  # enquired, never resent


async def test_unknown_refund_waits_for_a_person(
        shop: tuple[TestClient, str], sim: ZvtTerminalSim, state_dir: Path) -> None:
    client, token = shop
    sale = await paid(shop, "pers-sale-001")
    sim.behaviour.remember_last = False  # the terminal cannot tell afterwards
    sim.behaviour.drop_link_after = "command"
    pending = await refund(shop, sale["id"], "pers-ref-0001")
    lost = await refund_done(shop, pending["id"])
    assert lost["status"] == "unknown"
    unknown = await (await client.get("/api/v1/payments", headers=auth(token))).json()
    assert [p["id"] for p in unknown["unknown"]] == [pending["card"]["intent_id"]]
    again = await refund(shop, sale["id"], "pers-ref-0002", status=409)
    assert "refunded in full" in again["detail"]  # units stay reserved

    resp = await client.post(
        f"/api/v1/payments/{pending['card']['intent_id']}/resolve",
        json={"outcome": "approved", "by": "Ida", "note": "slip shows refund"},
        headers=auth(token))
    assert resp.status == 200, await resp.text()
    done = await (await client.get(f"/api/v1/refunds/{pending['id']}",
                                   headers=auth(token))).json()
    assert done["status"] == "completed"
    assert done["card_refund"]["resolved_by"].startswith("Ida on Till 1")
    assert event_kinds(state_dir / JOURNAL_FILE).count("sale.refunded") == 1


async def test_cash_refund_still_completes_at_once_with_a_slip(
        shop: tuple[TestClient, str], printer: SimulatedPrinter) -> None:
    client, token = shop
    body = {"client_ref": "cash-sale-0001", "lines": [{"sku": "TEE", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}}
    sale = await (await client.post("/api/v1/sales", json=body,
                                    headers=auth(token))).json()
    done = await refund(shop, sale["id"], "cash-ref-0001", status=201)
    assert done["status"] == "completed" and "card" not in done
    await wait_for(lambda: len(printer.receipts) == 2)
    assert "Cash paid out" in printer.receipts[1]
