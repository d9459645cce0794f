"""Live prices and stream attribution for card sales, as for cash (#8): a real
daemon app, a simulated ZVT terminal on a pty, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from device.sim.zvt_terminal import ZvtTerminalSim
from tests.cardhelpers import (
    settled,
    stock,
    zvt_fixtures,
)
from tests.conftest import auth, make_config, pair
from tests.livehelpers import deliver, integration, rfc3339

pytestmark = pytest.mark.timeout(90)


fast_zvt, sim = zvt_fixtures()


@pytest.fixture
async def live(aiohttp_client: Any, state_dir: Path,
               sim: ZvtTerminalSim) -> AsyncIterator[tuple[TestClient, str, str]]:
    config = make_config(state_dir, terminal={
        "protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
        "response_timeout_s": 2})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    yield client, token, await integration(client)


async def card_sale(client: TestClient, token: str, sku: str) -> dict[str, Any]:
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": sku, "qty": 1}],
            "payment": {"method": "card"}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


def completed_event(state_dir: Path, sale_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{state_dir / JOURNAL_FILE}?mode=ro", uri=True)
    try:
        for (body,) in conn.execute("SELECT body FROM events WHERE kind ="
                                    " 'sale.completed' ORDER BY seq DESC"):
            data = json.loads(body)["data"]
            if data["id"] == sale_id:
                return dict(data)
    finally:
        conn.close()
    raise AssertionError(f"no sale.completed for {sale_id}")


async def live_left(client: TestClient, token: str, sku: str) -> Any:
    resp = await client.get(f"/api/v1/products?q={sku}", headers=auth(token))
    item = next(i for i in (await resp.json())["items"] if i["sku"] == sku)
    return item.get("live_left")


async def test_a_card_sale_gets_the_live_price_and_the_stream(
        live: tuple[TestClient, str, str], state_dir: Path) -> None:
    client, token, secret = live
    started = {"id": "e-start", "type": "stream.started", "stream_id": "S-9"}
    pinned = {"id": "e-pin", "type": "product.pinned", "sku": "SEIFE",
              "price_minor": 450, "until": rfc3339(time.time() + 600)}
    for body in (started, pinned):
        assert (await deliver(client, secret, body)).status == 202

    sale = await card_sale(client, token, "SEIFE")
    assert sale["total_minor"] == 450
    done = await settled(client, token, sale["id"])
    assert done["status"] == "completed"
    assert done["payments"][0]["amount_minor"] == 450
    event = completed_event(state_dir, sale["id"])
    assert event["live"]["stream_id"] == "S-9"
    assert event["live"]["lines"][0]["event_id"] == "e-pin"
    assert event["lines"][0]["name"].endswith("Live price")
    receipt = await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                               headers=auth(token))
    assert "Live price" in await receipt.text()
    streams = await (await client.get("/api/v1/live/streams",
                                      headers=auth(token))).json()
    assert streams["items"][0]["revenue_minor"] == 450


async def test_a_declined_then_cancelled_card_sale_gives_its_flash_unit_back(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    # 5,13: the simulator refuses amounts ending in 13 cents.
    flash = {"id": "e-flash", "type": "flash.started", "sku": "TEE",
             "price_minor": 513, "quantity": 1, "until": rfc3339(time.time() + 600)}
    started = {"id": "e-start", "type": "stream.started", "stream_id": "S-3"}
    for body in (started, flash):
        assert (await deliver(client, secret, body)).status == 202
    assert await live_left(client, token, "TEE") == 1

    sale = await card_sale(client, token, "TEE")
    assert sale["total_minor"] == 513
    assert (await settled(client, token, sale["id"]))["payment"]["outcome"] == (
        "declined")
    assert await live_left(client, token, "TEE") is None  # sold out while unpaid
    intent = sale["payment"]["id"]
    streams = await (await client.get("/api/v1/live/streams",
                                      headers=auth(token))).json()
    assert streams["items"][0]["sales"] == 0  # attributed, but not paid
    resp = await client.post(f"/api/v1/payments/{intent}/cancel-sale",
                             headers=auth(token))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "cancelled"
    for _ in range(50):  # the board learns after the commit
        if await live_left(client, token, "TEE") == 1:
            break
        await asyncio.sleep(0.05)
    assert await live_left(client, token, "TEE") == 1
