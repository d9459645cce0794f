"""The live-price step's index: sales skip the live tables only when nothing is live.

The index must never hide a live price: a new pin applies to the next sale, an
offer ends at its exact time with nothing else happening, and a rolled-back
live change (new or ended offer) leaves the index as the journal is.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.errors import InputError
from daemon.journal.store import Tx
from daemon.live.service import live_for
from daemon.sales.service import SaleRequest, create_sale
from daemon.web.keys import STALLBOX
from tests.livehelpers import deliver, integration, rfc3339

CATALOG = (b"sku,name,price,tax_class\nPESTO,Pesto,\"5,90\",reduced\n"
           b"KERZE,Kerze,\"12,90\",standard\n")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stall(client: TestClient) -> tuple[TestClient, Any, str, Clock]:
    box = client.app[STALLBOX]
    await box.import_catalog(CATALOG, skip_invalid=False)
    secret = await integration(client)
    clock = Clock()
    live = live_for(box)
    live.pricing._clock = clock  # the sale's decision; the board keeps real time
    return client, box, secret, clock


def _request(sku: str = "PESTO") -> SaleRequest:
    return SaleRequest(uuid.uuid4().hex, ((sku, 1),), 100_000)


async def _unit(box: Any, sku: str = "PESTO") -> int:
    return (await box.sell(_request(sku))).sale["lines"][0]["unit_minor"]


async def _quiet_sales(box: Any) -> None:
    for _ in range(3):  # the index is read, then confirmed by the commit
        assert await _unit(box) == 590


def _pin(until_s: float, price: int = 450) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "type": "product.pinned", "sku": "PESTO",
            "until": rfc3339(until_s), "price_minor": price}


async def test_pin_applies_to_the_next_sale(stall: Any) -> None:
    client, box, secret, clock = stall
    await _quiet_sales(box)
    assert (await deliver(client, secret, _pin(time.time() + 600))).status == 202
    assert await _unit(box) == 450
    assert await _unit(box, "KERZE") == 1290


async def test_offer_ends_at_its_exact_time_with_nothing_else_happening(
        stall: Any) -> None:
    client, box, secret, clock = stall
    until = float(int(time.time()) + 600)  # whole seconds: exact in RFC 3339
    assert (await deliver(client, secret, _pin(until))).status == 202
    for _ in range(3):
        assert await _unit(box) == 450
    clock.now = until - 0.001
    assert await _unit(box) == 450
    clock.now = until
    assert await _unit(box) == 590
    assert await _unit(box) == 590


async def test_stream_start_attributes_the_next_sale(stall: Any) -> None:
    client, box, secret, clock = stall
    await _quiet_sales(box)
    started = {"id": "s1", "type": "stream.started", "stream_id": "S-1"}
    assert (await deliver(client, secret, started)).status == 202
    outcome = await box.sell(_request())
    rows = await box.reader.run(lambda c: c.execute(
        "SELECT stream_id FROM live_sales WHERE client_ref = ?",
        (outcome.sale["client_ref"],)).fetchall())
    assert rows == [("S-1",)]


def _offer_sql(until_s: float) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT OR REPLACE INTO live_offers (sku, kind, event_id, stream_id,"
            " price_minor, until_s, cap, sold, t, seq)"
            " VALUES ('PESTO', 'pin', 'x', '', 100, ?, NULL, 0, 0, 1)", (until_s,))


async def test_rolled_back_new_offer_leaves_no_live_price(stall: Any) -> None:
    client, box, secret, clock = stall
    await _quiet_sales(box)
    pricing, config = live_for(box).pricing, box.config

    def offer_sell_fail(tx: Tx) -> None:
        pricing.touch()
        tx.execute(*_offer_sql(clock.now + 600))
        sold = create_sale(tx, _request(), config.stall, config.billing, pricing)
        assert sold.sale["lines"][0]["unit_minor"] == 100
        raise InputError("rolled back")

    with pytest.raises(InputError):
        await box.journal.transact(offer_sell_fail)
    await _quiet_sales(box)


async def test_rolled_back_end_of_offer_keeps_the_live_price(stall: Any) -> None:
    client, box, secret, clock = stall
    assert (await deliver(client, secret, _pin(time.time() + 600))).status == 202
    for _ in range(3):
        assert await _unit(box) == 450
    pricing, config = live_for(box).pricing, box.config

    def end_sell_fail(tx: Tx) -> None:
        pricing.touch()
        tx.execute("UPDATE live_offers SET until_s = ?", (clock.now,))
        for _ in range(2):  # read the index inside, and use it
            sold = create_sale(tx, _request(), config.stall, config.billing,
                               pricing)
            assert sold.sale["lines"][0]["unit_minor"] == 590
        raise InputError("rolled back")

    with pytest.raises(InputError):
        await box.journal.transact(end_sell_fail)
    for _ in range(3):
        assert await _unit(box) == 450
