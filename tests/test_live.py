"""Live selling: signed webhooks, live prices, flash caps, attribution (#8)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.live.errors import SignatureRejected
from daemon.live.signature import HEADER, mac, parse_header, verify
from scripts.daemonproc import DaemonProcess, run_cli, write_config
from tests.conftest import auth, use_pages
from tests.livehelpers import EVENTS, deliver, head_seq, integration, rfc3339

CATALOG = (
    "sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    "PESTO,Bärlauch-Pesto,\"5,90\",reduced,Feinkost,,180,no\n"
    "KERZE,Bienenwachskerze,\"12,90\",standard,Kerzen,,300,no\n"
).encode()


@pytest.fixture
async def live(client: TestClient, token: str) -> tuple[TestClient, str, str]:
    """A stocked stall with one integration: (client, token, secret)."""
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token, await integration(client)


def pin(sku: str = "PESTO", price: int | None = 450, until_s: float = 600,
        **extra: Any) -> dict[str, Any]:
    body = {"id": uuid.uuid4().hex, "type": "product.pinned", "sku": sku,
            "until": rfc3339(time.time() + until_s), **extra}
    if price is not None:
        body["price_minor"] = price
    return body


async def products(client: TestClient, token: str, q: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/products?q={q}", headers=auth(token))
    return (await resp.json())["items"][0]


async def sell(client: TestClient, token: str, sku: str, qty: int = 1,
               ref: str | None = None) -> dict[str, Any]:
    body = {"client_ref": ref or uuid.uuid4().hex,
            "lines": [{"sku": sku, "qty": qty}],
            "payment": {"method": "cash", "tendered_minor": 100_000}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


def test_signature_is_hmac_of_time_dot_body() -> None:
    secret, body = "sbl_test", b'{"id":"1"}'
    header = f"t=1700000000,v1={mac(secret, 1700000000, body)}"
    assert verify(header, body, [("a", "other"), ("b", secret)], 1700000100) == (
        "b", 1700000000)
    assert parse_header(header)[0] == 1700000000
    for bad in ("", "t=abc,v1=00", "v1=00", "t=1700000000", "x" * 600):
        with pytest.raises(SignatureRejected):
            verify(bad, body, [("b", secret)], 1700000000)


async def test_event_is_journaled_once_by_id(live: tuple[TestClient, str, str]
                                             ) -> None:
    client, _, secret = live
    body = {"id": "evt-1", "type": "stream.started", "stream_id": "s1",
            "platform": "twitch", "title": "Markt live"}
    first = await deliver(client, secret, body)
    seq = head_seq(client)
    again = await deliver(client, secret, body)
    late = await deliver(client, secret, body, t=int(time.time()) - 200)
    assert (first.status, again.status, late.status) == (202, 200, 200)
    assert head_seq(client) == seq


@pytest.mark.parametrize("case", ["wrong secret", "old", "future", "tampered",
                                  "no header"])
async def test_bad_signatures_get_401_and_journal_nothing(
        live: tuple[TestClient, str, str], case: str) -> None:
    client, _, secret = live
    body = json.dumps(pin()).encode()
    now = int(time.time())
    t, key, sent = now, secret, body
    if case == "wrong secret":
        key = "sbl_" + "0" * 64
    elif case == "old":
        t = now - 301
    elif case == "future":
        t = now + 301
    elif case == "tampered":
        sent = body.replace(b"450", b"1")
    headers = {"Content-Type": "application/json"}
    if case != "no header":
        headers[HEADER] = f"t={t},v1={mac(key, t, body)}"
    seq = head_seq(client)
    resp = await client.post(EVENTS, data=sent, headers=headers)
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert head_seq(client) == seq


async def test_bad_bodies_get_422_naming_the_field(
        live: tuple[TestClient, str, str]) -> None:
    client, _, secret = live
    seq = head_seq(client)
    for body, field in ((pin(sku="NOPE"), "sku"), ({"id": "x", "type": "bogus"},
                        "type"), (pin(until_s=30 * 86400), "until"),
                        ({**pin(), "extra": 1}, "extra")):
        resp = await deliver(client, secret, body)
        assert resp.status == 422, (field, await resp.text())
        assert (await resp.json())["field"] == field
    assert head_seq(client) == seq


async def test_live_price_shows_in_products_until_it_expires(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    assert (await deliver(client, secret, pin(until_s=1.0))).status == 202
    item = await products(client, token, "Pesto")
    assert (item["price_minor"], item["live_price_minor"]) == (590, 450)
    await asyncio.sleep(1.05)
    assert "live_price_minor" not in await products(client, token, "Pesto")
    sale = await sell(client, token, "PESTO")
    assert sale["total_minor"] == 590


async def test_flash_cap_of_5_under_20_concurrent_sales(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    flash = {**pin(price=300), "type": "flash.started", "quantity": 5}
    assert (await deliver(client, secret, flash)).status == 202
    sales = await asyncio.gather(*(sell(client, token, "PESTO")
                                   for _ in range(20)))
    units = sorted(s["lines"][0]["unit_minor"] for s in sales)
    assert units == [300] * 5 + [590] * 15
    item = await products(client, token, "Pesto")
    assert "live_price_minor" not in item


async def test_sale_is_attributed_to_stream_and_pin_with_live_receipt_line(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    started = {"id": "e1", "type": "stream.started", "stream_id": "S-42",
               "platform": "youtube", "title": "Samstag"}
    assert (await deliver(client, secret, started)).status == 202
    pinned = pin()
    assert (await deliver(client, secret, pinned)).status == 202
    sale = await sell(client, token, "PESTO", 2)
    await sell(client, token, "KERZE")
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert "Live price" in text and "4,50" in text
    streams = await (await client.get("/api/v1/live/streams",
                                      headers=auth(token))).json()
    assert streams["items"][0] | {"revenue_minor": 0} == {
        "stream_id": "S-42", "platform": "youtube", "title": "Samstag",
        "active": True, "sales": 2, "revenue_minor": 0}
    assert streams["items"][0]["revenue_minor"] == 900 + 1290
    event = await _sale_event(client, sale["id"])
    assert event["live"]["stream_id"] == "S-42"
    assert event["live"]["lines"][0]["event_id"] == pinned["id"]
    assert event["live"]["lines"][0]["normal_minor"] == 590
    shift = await (await client.get("/api/v1/shifts/current",
                                    headers=auth(token))).json()
    report = shift.get("report", shift)
    assert report["streams"] == [{"stream_id": "S-42", "sales": 2,
                                  "gross_minor": 900 + 1290}]


async def _sale_event(client: TestClient, sale_id: str) -> dict[str, Any]:
    from daemon.web.keys import STALLBOX

    def read(conn: Any) -> dict[str, Any]:
        rows = conn.execute("SELECT body FROM events WHERE kind = 'sale.completed'")
        for (body,) in rows:
            data = json.loads(body)["data"]
            if data["id"] == sale_id:
                return data
        raise AssertionError("sale event not found")

    return await client.app[STALLBOX].reader.run(read)


async def test_out_of_order_unpin_does_not_undo_a_newer_pin(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    now = int(time.time())
    assert (await deliver(client, secret, pin(), t=now)).status == 202
    unpin = {"id": "old-unpin", "type": "product.unpinned", "sku": "PESTO"}
    assert (await deliver(client, secret, unpin, t=now - 60)).status == 202
    assert (await products(client, token, "Pesto"))["live_price_minor"] == 450
    newer = {"id": "new-unpin", "type": "product.unpinned", "sku": "PESTO"}
    assert (await deliver(client, secret, newer, t=now + 1)).status == 202
    assert "live_price_minor" not in await products(client, token, "Pesto")


async def test_till_strikes_the_normal_price_through(
        live: tuple[TestClient, str, str]) -> None:
    client, token, secret = live
    await deliver(client, secret, pin())
    use_pages(client, token)
    text = await (await client.get("/till?q=Pesto")).text()
    assert "<s>5,90 €</s> <strong>4,50 €</strong>" in text
    await client.post("/till/cart", data={"action": "add", "sku": "PESTO"})
    text = await (await client.get("/till")).text()
    assert "<s>5,90 €</s> 4,50 €" in text


@pytest.mark.slow
def test_integration_add_asks_the_running_daemon(tmp_path: Any) -> None:
    config = write_config(tmp_path / "stallbox.toml", tmp_path / "state")
    daemon = DaemonProcess(config)
    try:
        result = run_cli("integration", "add", "obs-bridge", "--state",
                         str(tmp_path / "state"))
        assert result.returncode == 0, result.stderr
        secret = result.stdout.strip().splitlines()[-1]
        assert secret.startswith("sbl_") and len(secret) == 68
        again = run_cli("integration", "add", "obs-bridge", "--state",
                        str(tmp_path / "state"))
        assert again.returncode == 1 and "exists" in again.stderr
        asyncio.run(_post_signed(daemon.url, secret))
    finally:
        assert daemon.terminate() == 0
    state = tmp_path / "state" / "live-integrations.json"
    assert state.stat().st_mode & 0o777 == 0o600


async def _post_signed(url: str, secret: str) -> None:
    import aiohttp

    from daemon.live.signature import sign

    raw = json.dumps({"id": "a", "type": "stream.started",
                      "stream_id": "x"}).encode()
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url + EVENTS.lstrip("/"), data=raw, headers={
            HEADER: sign(secret, int(time.time()), raw),
            "Content-Type": "application/json"})
        assert resp.status == 202, await resp.text()
