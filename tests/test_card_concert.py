"""Card payments through the daemon with a Concert terminal: the HTTP API, the
simulated Concert terminal on a real pty, the journal on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from device.sim.concert_terminal import ConcertTerminalSim
from tests.cardhelpers import event_kinds, sell_by_card, settled, stock
from tests.conftest import auth, make_config, pair

pytestmark = pytest.mark.timeout(90)
UNKNOWN_STAYS_S = 2.5  # longer than a keepalive round: nothing settles it alone


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ConcertTerminalSim]:
    terminal = ConcertTerminalSim(tmp_path / "ttyConcert")
    terminal.start()
    yield terminal
    terminal.stop()


@pytest.fixture
async def shop(aiohttp_client: Any, state_dir: Path, sim: ConcertTerminalSim
               ) -> AsyncIterator[tuple[TestClient, str]]:
    config = make_config(state_dir, terminal={
        "protocol": "concert", "port": str(sim.link_path), "keepalive_s": 1})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    yield client, token


async def test_concert_approval_completes_the_sale_once(
        shop: tuple[TestClient, str], sim: ConcertTerminalSim,
        state_dir: Path) -> None:
    client, token = shop
    sale = await sell_by_card(client, token, "concert-ok-001")
    done = await settled(client, token, sale["id"])
    assert (done["status"], done["payment"]["status"]) == ("completed", "approved")
    assert done["payment"]["amount_minor"] == 320
    assert [r.amount_minor for r in sim.requests] == [320]
    assert event_kinds(state_dir / JOURNAL_FILE).count("sale.completed") == 1
    status = await (await client.get("/api/v1/terminal", headers=auth(token))).json()
    assert status["protocol"] == "concert"


async def test_concert_unknown_outcome_waits_for_a_person(
        shop: tuple[TestClient, str], sim: ConcertTerminalSim,
        state_dir: Path) -> None:
    client, token = shop
    sim.behaviour.drop_link_before_reply = True
    sale = await sell_by_card(client, token, "concert-unk-01")
    lost = await settled(client, token, sale["id"])
    assert lost["payment"]["status"] == "unknown"
    await asyncio.sleep(UNKNOWN_STAYS_S)  # Concert has no last-transaction enquiry
    still = await (await client.get(f"/api/v1/sales/{sale['id']}",
                                    headers=auth(token))).json()
    assert (still["status"], still["payment"]["status"]) == ("pending", "unknown")

    resp = await client.post(f"/api/v1/payments/{lost['payment']['id']}/resolve",
                             json={"outcome": "approved", "by": "Jo",
                                   "note": "slip says approved"}, headers=auth(token))
    assert resp.status == 200, await resp.text()
    done = await (await client.get(f"/api/v1/sales/{sale['id']}",
                                   headers=auth(token))).json()
    assert done["status"] == "completed"
    assert done["payment"]["resolved_by"].startswith("Jo on Till 1")
    assert len(sim.requests) == 1  # never sent twice
    kinds = event_kinds(state_dir / JOURNAL_FILE)
    assert kinds.count("sale.completed") == 1 and "payment.resolved" in kinds
