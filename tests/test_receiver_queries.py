"""Receiver query parameters: one whole number each, in range, a period that is
not reversed, and 404 for a stall it does not know on every stall route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import auth, make_config, pair
from tests.synchelpers import STALL, Receiver, stall_receiver
from tests.test_receiver_billing import CATALOG, get, sell

pytestmark = pytest.mark.timeout(120)
PERIOD_ROUTES = ("streams", "display")


receiver = stall_receiver()


@pytest.fixture
async def synced(aiohttp_client: Any, state_dir: Path,
                 receiver: Receiver) -> TestClient:
    config = make_config(state_dir, sync={"url": receiver.url, "stall_id": STALL,
                                          "interval_s": 3600})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    for _ in range(3):
        await sell(client, token, ("HONIG", 1))
    await client.app[STALLBOX].sync.sync_now()
    return client


async def test_every_stall_route_answers_404_for_an_unknown_stall(
        receiver: Receiver) -> None:
    for what in (*PERIOD_ROUTES, "invoices", "invoices/s1", ""):
        code, doc = await get(receiver, f"/v1/stalls/nobody/{what}".rstrip("/"))
        assert code == 404, (what, doc)


TOO_LARGE = ["9223372036854775808", "9" * 40, "1" + "0" * 5000]


@pytest.mark.parametrize("value", TOO_LARGE)
async def test_a_too_large_number_is_named_too_large(
        synced: TestClient, receiver: Receiver, value: str) -> None:
    for path in (*PERIOD_ROUTES, "invoices"):
        code, doc = await get(receiver, f"/v1/stalls/{STALL}/{path}?after_seq={value}")
        assert code == 422 and "too large" in doc["detail"], doc
        assert doc["field"] == "after_seq"


@pytest.mark.parametrize("query", [
    "after_seq=²", "after_seq=%D9%A3", "after_seq=+1", "after_seq= 1",
    "after_seq=1&after_seq=2", "upto_seq=", "after_seq=0x10",
])
async def test_a_query_number_is_ascii_digits_given_once(
        synced: TestClient, receiver: Receiver, query: str) -> None:
    for path in (*PERIOD_ROUTES, "invoices"):
        if path == "invoices" and "upto" in query:
            continue
        code, doc = await get(receiver, f"/v1/stalls/{STALL}/{path}?{query}")
        assert code == 422 and doc["field"] in query, (path, doc)


async def test_a_reversed_period_is_422_and_a_future_one_empty(
        synced: TestClient, receiver: Receiver) -> None:
    for what in PERIOD_ROUTES:
        code, doc = await get(receiver,
                              f"/v1/stalls/{STALL}/{what}?after_seq=10&upto_seq=5")
        assert code == 422 and doc["field"] == "after_seq", doc
        code, doc = await get(receiver,
                              f"/v1/stalls/{STALL}/{what}?after_seq=5&upto_seq=5")
        assert code == 200
        code, doc = await get(receiver, f"/v1/stalls/{STALL}/{what}"
                              "?after_seq=100000&upto_seq=200000")
        assert code == 200 and doc["upto_seq"] < doc["after_seq"]


async def test_invoice_pages(synced: TestClient, receiver: Receiver) -> None:
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/invoices?limit=0")
    assert code == 422 and doc["field"] == "limit"
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/invoices?limit=2")
    assert code == 200 and len(doc["items"]) == 2 and doc["next_after_seq"]
    after = doc["next_after_seq"]
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/invoices?after_seq={after}")
    assert code == 200 and len(doc["items"]) == 1 and doc["next_after_seq"] is None
