"""Revenue per live stream and display counts at the receiver: a real daemon on
loopback, its sync client, the reference receiver on loopback (#8)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from daemon.display.service import display_for
from daemon.journal.store import Tx
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from sync import protocol
from sync.outbox import Outbox
from sync.receiver.sqlite_store import DB_FILE
from tests.conftest import auth, make_config, pair, use_pages
from tests.livehelpers import deliver, integration, rfc3339
from tests.synchelpers import (
    STALL,
    Receiver,
    device_dir,
    open_signed,
    sale_data,
    stall_receiver,
)

pytestmark = pytest.mark.timeout(120)
CATALOG = (
    b"sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    b"HONIG,Waldhonig,\"7,50\",reduced,Feinkost,,500,no\n"
    b"SEIFE,Lavendelseife,\"4,20\",standard,Bad,,100,no\n"
)


receiver = stall_receiver()


@pytest.fixture
async def stall(aiohttp_client: Any, state_dir: Path,
                receiver: Receiver) -> tuple[TestClient, str]:
    config = make_config(state_dir, sync={"url": receiver.url, "stall_id": STALL,
                                          "interval_s": 3600})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token


async def sell(client: TestClient, token: str, *lines: tuple[str, int]
               ) -> dict[str, Any]:
    body = {"client_ref": uuid.uuid4().hex,
            "lines": [{"sku": sku, "qty": qty} for sku, qty in lines],
            "payment": {"method": "cash", "tendered_minor": 100_00}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def get(rec: Receiver, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(rec.url + path) as resp:
            return resp.status, await resp.json(content_type=None)


async def live_day(client: TestClient, token: str) -> dict[str, Any]:
    """Sell during a stream (one pinned product), refund one, sell after it."""
    secret = await integration(client)
    started = {"id": "ev-start", "type": "stream.started", "stream_id": "S-7"}
    pinned = {"id": "ev-pin", "type": "product.pinned", "sku": "HONIG",
              "price_minor": 600, "until": rfc3339(time.time() + 600)}
    for body in (started, pinned):
        assert (await deliver(client, secret, body)).status == 202
    two = await sell(client, token, ("HONIG", 2), ("SEIFE", 1))  # 2×6,00 + 4,20
    one = await sell(client, token, ("SEIFE", 1))
    refund = await client.post(f"/api/v1/sales/{one['id']}/refunds",
                               json={"client_ref": uuid.uuid4().hex},
                               headers=auth(token))
    assert refund.status == 201, await refund.text()
    ended = {"id": "ev-end", "type": "stream.ended", "stream_id": "S-7"}
    unpinned = {"id": "ev-unpin", "type": "product.unpinned", "sku": "HONIG"}
    for body in (ended, unpinned):
        assert (await deliver(client, secret, body)).status == 202
    await sell(client, token, ("HONIG", 1))  # after the stream: not attributed
    return {"two": two, "one": one}


EXPECTED_STREAM = {
    "stream_id": "S-7", "currency": "EUR", "sales": 2,
    "gross_minor": 2 * 600 + 420 + 420, "refunds": 1, "refunded_minor": 420,
    "net_minor": 2 * 600 + 420,
    "offers": [{"kind": "pin", "event_id": "ev-pin", "sku": "HONIG", "sales": 1,
                "qty": 2, "revenue_minor": 1200, "normal_value_minor": 1500,
                "refunded_qty": 0, "refunded_minor": 0, "net_minor": 1200}]}


async def sponsor_shown_and_bought(client: TestClient, token: str) -> None:
    """A sponsor's creative on the till's display, then a sale of its product."""
    use_pages(client, token)
    form = FormData()
    for key, value in {"kind": "sponsor", "title": "Honig vom Hof",
                       "sponsor": "Imkerei Sommer", "share": "100"}.items():
        form.add_field(key, value)
    resp = await client.post("/display/manage/creatives", data=form)
    assert resp.status == 200, await resp.text()
    page = await (await client.get("/display?till=Till%201")).text()
    assert "Imkerei Sommer" in page
    await display_for(client.app[STALLBOX]).flush()


async def test_revenue_per_stream_and_pin_reaches_the_receiver_once(
        stall: tuple[TestClient, str], receiver: Receiver, state_dir: Path) -> None:
    client, token = stall
    sold = await live_day(client, token)
    await sponsor_shown_and_bought(client, token)
    box = client.app[STALLBOX]
    status = await box.sync.sync_now()
    assert (status["state"], status["backlog"]) == ("idle", 0), status

    code, doc = await get(receiver, f"/v1/stalls/{STALL}/streams")
    assert code == 200 and doc["streams"] == [EXPECTED_STREAM], doc
    code, bill = await get(receiver, f"/v1/stalls/{STALL}/invoices/{sold['two']['id']}")
    assert code == 200 and bill["live"]["stream_id"] == "S-7"
    code, shown = await get(receiver, f"/v1/stalls/{STALL}/display")
    assert code == 200
    sponsor = shown["sponsors"][0]
    assert (sponsor["sponsor"], sponsor["impressions"]) == ("Imkerei Sommer", 1)
    assert sponsor["shown_s"] > 0 and sponsor["slots"][0].startswith("c:")
    row = next(r for r in shown["slots"] if r["sponsor"] == "Imkerei Sommer")
    assert row["hour"] and row["title"] == "Honig vom Hof"

    # Re-delivery: the whole journal again, and an overlapping batch.
    for after in (0, 3):
        await resend(state_dir, receiver, after)
    assert (await get(receiver, f"/v1/stalls/{STALL}/streams"))[1] == doc
    assert (await get(receiver, f"/v1/stalls/{STALL}/display"))[1] == shown

    # A restart, and a receiver database from before the billing index.
    await receiver.stop()
    drop_billing_tables(receiver.data_dir / DB_FILE)
    await receiver.start()
    assert (await get(receiver, f"/v1/stalls/{STALL}/streams"))[1] == doc
    assert (await get(receiver, f"/v1/stalls/{STALL}/display"))[1] == shown


async def resend(state_dir: Path, rec: Receiver, after: int) -> None:
    """Post the journal after seq `after` again, as a client that lost its ack."""
    key = DeviceIdentity.load_or_create(state_dir)
    outbox = Outbox(state_dir / JOURNAL_FILE, STALL, key.sign)
    try:
        prepared = await outbox.prepare(after)
    finally:
        await outbox.close()
    assert prepared is not None
    headers = {"Content-Type": protocol.CONTENT_TYPE, "Content-Encoding": "deflate",
               protocol.SIGNATURE_HEADER: prepared.signature,
               protocol.IDEMPOTENCY_HEADER: prepared.key}
    async with aiohttp.ClientSession() as session:
        async with session.post(rec.url + protocol.batch_path(STALL),
                                data=prepared.payload, headers=headers) as resp:
            body = await resp.json()
    assert resp.status == 200 and body["stored"] == 0, body


def drop_billing_tables(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for table in ("stream_sales", "stream_lines", "refund_totals",
                      "display_measures", "display_creatives"):
            conn.execute(f"DROP TABLE {table}")
        conn.commit()
    finally:
        conn.close()


async def test_a_billing_period_is_a_seq_range(
        stall: tuple[TestClient, str], receiver: Receiver) -> None:
    client, token = stall
    sold = await live_day(client, token)
    await client.app[STALLBOX].sync.sync_now()
    second = sold["two"]["seq"]
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/streams?after_seq={second}")
    assert code == 200
    stream = doc["streams"][0]  # the later sale and the refund, not the first
    assert (stream["sales"], stream["gross_minor"], stream["refunded_minor"]) == (
        1, 420, 420)
    assert stream["offers"] == []
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/streams?upto_seq={second}")
    assert doc["streams"][0]["sales"] == 1 and doc["streams"][0]["refunds"] == 0


@pytest.mark.parametrize("query", ["after_seq=-1", "upto_seq=abc",
                                   "after_seq=" + "9" * 40, "upto_seq=1e3"])
async def test_bad_period_queries_are_422(stall: tuple[TestClient, str],
                                          receiver: Receiver, query: str) -> None:
    await stall[0].app[STALLBOX].sync.sync_now()
    for what in ("streams", "display"):
        code, doc = await get(receiver, f"/v1/stalls/{STALL}/{what}?{query}")
        assert code == 422 and doc["field"] in query, doc


async def test_unknown_stall_is_404(receiver: Receiver) -> None:
    for what in ("streams", "display"):
        code, _ = await get(receiver, f"/v1/stalls/nobody/{what}")
        assert code == 404


BAD_EVENTS = [
    ("display.measured", {"rows": [{"slot": "c:1", "hour": "2026-01-01T10",
                                    "cohort": "m|de|", "impressions": -3,
                                    "shown_s": 15, "conversions": 0}]},
     "data.rows[0].impressions"),
    ("display.measured", {"rows": [{"slot": "c:1", "hour": "h", "cohort": "",
                                    "impressions": 1, "shown_s": "15",
                                    "conversions": 0}]}, "data.rows[0].shown_s"),
    ("display.measured", {"rows": "everything"}, "data.rows"),
    ("display.creative_saved", {"id": "x", "kind": "sponsor", "title": "t"},
     "data.sponsor"),
    ("sale.completed", {**sale_data(1), "live": {"stream_id": 7, "lines": []}},
     "data.live.stream_id"),
    ("sale.completed", {**sale_data(1), "live": {"stream_id": "S", "lines": [
        {"sku": "BROT", "kind": "pin", "event_id": "e", "unit_minor": "150",
         "normal_minor": 450}]}}, "data.live.lines[0].unit_minor"),
    ("sale.completed", {**sale_data(1), "live": ["S"]}, "data.live"),
]


@pytest.mark.parametrize(("kind", "data", "field"), BAD_EVENTS)
async def test_malformed_billing_events_are_refused_and_nothing_is_counted(
        tmp_path: Path, kind: str, data: dict[str, Any], field: str) -> None:
    journal = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
    rec = await Receiver(tmp_path / "receiver").start()
    try:
        key = DeviceIdentity.load_or_create(device_dir(tmp_path))
        await rec.enrol(key)

        def append(tx: Tx) -> None:
            tx.append(kind, data)
            tx.force_seal()

        await journal.transact(append)
        outbox = Outbox(journal.path, STALL, key.sign)
        try:
            prepared = await outbox.prepare(0)
        finally:
            await outbox.close()
        assert prepared is not None
        headers = {"Content-Type": protocol.CONTENT_TYPE,
                   "Content-Encoding": "deflate",
                   protocol.SIGNATURE_HEADER: prepared.signature,
                   protocol.IDEMPOTENCY_HEADER: prepared.key}
        async with aiohttp.ClientSession() as session:
            async with session.post(rec.url + protocol.batch_path(STALL),
                                    data=prepared.payload, headers=headers) as resp:
                body = await resp.json(content_type=None)
        assert resp.status == 422 and body["field"].endswith(field), body
        assert await rec.stored_seqs() == []
        code, doc = await get(rec, f"/v1/stalls/{STALL}/display")
        assert code == 200 and doc["slots"] == [] and doc["sponsors"] == []
    finally:
        await rec.stop()
        await journal.close()


async def test_a_refund_of_a_live_line_comes_off_its_offer(
        stall: tuple[TestClient, str], receiver: Receiver) -> None:
    client, token = stall
    sold = await live_day(client, token)
    two = sold["two"]  # 2 × HONIG at the pin's 6,00, then SEIFE
    refund = await client.post(f"/api/v1/sales/{two['id']}/refunds",
                               json={"client_ref": uuid.uuid4().hex,
                                     "lines": [{"line": 0, "qty": 1}]},
                               headers=auth(token))
    assert refund.status == 201, await refund.text()
    await client.app[STALLBOX].sync.sync_now()
    code, doc = await get(receiver, f"/v1/stalls/{STALL}/streams")
    assert code == 200
    [offer] = doc["streams"][0]["offers"]
    assert (offer["qty"], offer["revenue_minor"]) == (2, 1200)
    assert (offer["refunded_qty"], offer["refunded_minor"], offer["net_minor"]) == (
        1, 600, 600)
    refund_seq = await client.app[STALLBOX].reader.run(lambda c: c.execute(
        "SELECT max(seq) FROM events WHERE kind = 'sale.refunded'").fetchone()[0])
    # a period holding only the refund names the offer with nothing sold in it
    code, late = await get(receiver, f"/v1/stalls/{STALL}/streams"
                           f"?after_seq={refund_seq - 1}")
    [offer] = late["streams"][0]["offers"]
    assert (offer["sales"], offer["refunded_qty"], offer["net_minor"]) == (0, 1, -600)
