"""Helpers for card payment tests: a stocked stall with a simulated ZVT terminal."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from device.sim.zvt_terminal import ZvtSimBehaviour, ZvtTerminalSim
from device.terminal import zvt
from device.terminal import zvt_apdu as z
from tests.conftest import auth

# Prices by the simulator's amount rules (cents): 13 refused, 51 insufficient
# funds, 66 customer abort; anything else is approved.
CATALOG = (
    "sku,name,price,tax_class,category\n"
    "TEE,Kräutertee,\"3,20\",reduced,Tee\n"
    "SEIFE,Seife,\"5,90\",standard,Seife\n"
    "REFUSED,Kerze rot,\"5,13\",standard,Kerzen\n"
    "POOR,Kerze blau,\"5,51\",standard,Kerzen\n"
    "QUIT,Kerze grün,\"2,66\",standard,Kerzen\n"
).encode()
PAYMENT_WAIT_S = 15.0


def shrink_zvt_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the driver's timeouts so a silent terminal shows within seconds."""
    monkeypatch.setattr(zvt, "ACK_TIMEOUT_S", 0.5)
    monkeypatch.setattr(zvt, "COMMAND_ACCEPT_TIMEOUT_S", 2.0)


def zvt_fixtures() -> tuple[Any, Any]:
    """Return a module's two ZVT fixtures: ``fast_zvt`` (autouse: timeouts
    shrunk to seconds) and ``sim`` (a simulated terminal on a real pty).
    Assign them in the test module: ``fast_zvt, sim = zvt_fixtures()``."""

    @pytest.fixture(autouse=True)
    def fast_zvt(monkeypatch: pytest.MonkeyPatch) -> None:
        shrink_zvt_timeouts(monkeypatch)

    @pytest.fixture
    def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
        with running_zvt(tmp_path) as terminal:
            yield terminal

    return fast_zvt, sim


@contextmanager
def running_zvt(tmp_path: Path, behaviour: ZvtSimBehaviour | None = None
                ) -> Iterator[ZvtTerminalSim]:
    """Run a simulated ZVT terminal on a real pty at tmp_path/ttyZVT."""
    terminal = ZvtTerminalSim(tmp_path / "ttyZVT", behaviour)
    terminal.start()
    try:
        yield terminal
    finally:
        terminal.stop()


def card_body(ref: str, sku: str = "TEE", qty: int = 1) -> dict[str, Any]:
    """Return a sale body paid by card."""
    return {"client_ref": ref, "lines": [{"sku": sku, "qty": qty}],
            "payment": {"method": "card"}}


async def stock(client: TestClient, token: str) -> None:
    """Import the card test catalog."""
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()


async def sell_by_card(client: TestClient, token: str, ref: str,
                       sku: str = "TEE") -> dict[str, Any]:
    """Post a card sale and return the 202 answer."""
    resp = await client.post("/api/v1/sales", json=card_body(ref, sku),
                             headers=auth(token))
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def settled(client: TestClient, token: str, sale_id: str,
                  timeout_s: float = PAYMENT_WAIT_S) -> dict[str, Any]:
    """Poll the sale until its card payment is no longer pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await client.get(f"/api/v1/sales/{sale_id}", headers=auth(token))
        sale = dict(await resp.json())
        if sale["payment"]["outcome"] != "pending":
            return sale
        assert time.monotonic() < deadline, f"payment still pending: {sale}"
        await asyncio.sleep(0.02)


def authorisations(sim: ZvtTerminalSim) -> int:
    """Return how many authorisation commands (06 01) reached the terminal."""
    return sum(1 for apdu in sim.received if apdu[:2] == z.CMD_AUTHORISATION)


def event_kinds(journal: Path) -> list[str]:
    """Return the kinds of every journal event, in order (read-only)."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT kind FROM events ORDER BY seq")]
    finally:
        conn.close()
