"""The receiver on loopback: enrolment, signatures, chain, idempotency, limits."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.journal.canonical import canonical_bytes, parse_canonical
from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from sync import protocol
from sync.outbox import Outbox, PreparedBatch
from tests.synchelpers import (
    STALL,
    Receiver,
    device_dir,
    fill,
    identity,
    open_signed,
    running_receiver,
    sale_data,
)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
    await fill(j, 30, chunk=1)  # every event sealed: batches of any size
    yield j
    await j.close()


@pytest.fixture
def key(tmp_path: Path) -> DeviceIdentity:
    return DeviceIdentity.load_or_create(device_dir(tmp_path))


@pytest.fixture
async def receiver(tmp_path: Path, key: DeviceIdentity) -> AsyncIterator[Receiver]:
    async with running_receiver(tmp_path / "receiver", key) as rec:
        yield rec


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def batch(journal: Journal, key: DeviceIdentity, after: int,
                events: int) -> PreparedBatch:
    outbox = Outbox(journal.path, STALL, key.sign, max_events=events)
    try:
        prepared = await outbox.prepare(after)
    finally:
        await outbox.close()
    assert prepared is not None
    return prepared


async def post(session: aiohttp.ClientSession, rec: Receiver, b: PreparedBatch, *,
               stall: str = STALL, payload: bytes | None = None,
               signature: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": protocol.CONTENT_TYPE, "Content-Encoding": "deflate",
               protocol.SIGNATURE_HEADER: signature or b.signature,
               protocol.IDEMPOTENCY_HEADER: b.key}
    async with session.post(rec.url + protocol.batch_path(stall),
                            data=payload or b.payload, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def resign(raw: bytes, key: DeviceIdentity) -> tuple[bytes, str]:
    return zlib.compress(raw), protocol.sign_batch(key.sign, raw)


async def test_a_batch_is_stored_and_acknowledged(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    status, body = await post(session, receiver, await batch(journal, key, 0, 30))
    assert (status, body["acked_seq"], body["stored"]) == (200, 30, 30)
    async with session.get(f"{receiver.url}/v1/stalls/{STALL}") as resp:
        info = await resp.json()
    assert (info["last_seq"], info["events_stored"]) == (30, 30)
    assert abs(info["clock_offset_ms"]) < 60_000
    assert info["clock"]["behind_journal"] is False


async def test_same_batch_again_gets_the_same_ack_and_stores_nothing(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    b = await batch(journal, key, 0, 10)
    first = await post(session, receiver, b)
    again = await post(session, receiver, b)
    assert first[1]["acked_seq"] == again[1]["acked_seq"] == 10
    assert (first[1]["stored"], again[1]["stored"]) == (10, 0)
    assert again[1]["duplicate"] is True
    assert await receiver.stored_seqs() == list(range(1, 11))


async def test_overlapping_batch_stores_only_the_new_events(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await post(session, receiver, await batch(journal, key, 0, 10))
    status, body = await post(session, receiver, await batch(journal, key, 5, 20))
    assert (status, body["acked_seq"], body["stored"]) == (200, 25, 15)
    assert await receiver.stored_seqs() == list(range(1, 26))


async def test_a_gap_answers_the_expected_seq(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await post(session, receiver, await batch(journal, key, 0, 5))
    status, body = await post(session, receiver, await batch(journal, key, 10, 5))
    assert status == 409
    assert (body["type"], body["expected_seq"]) == (protocol.GAP_TYPE, 6)
    assert await receiver.stored_seqs() == list(range(1, 6))


async def test_unknown_revoked_and_wrongly_signed_get_401(
        tmp_path: Path, journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    b = await batch(journal, key, 0, 5)
    assert (await post(session, receiver, b, stall="nobody"))[0] == 401
    other = await batch(journal, identity(tmp_path), 0, 5)
    status, body = await post(session, receiver, b, signature=other.signature)
    assert (status, body["field"]) == (401, protocol.SIGNATURE_HEADER)
    assert (await post(session, receiver, b, signature="ed25519=AAAA"))[0] == 401
    await receiver.storage.revoke(STALL)
    assert (await post(session, receiver, b))[0] == 401
    assert await receiver.stored_seqs() == []


def _raw(b: PreparedBatch) -> bytes:
    return zlib.decompress(b.payload)


async def test_a_tampered_amount_breaks_the_chain_and_nothing_is_stored(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    b = await batch(journal, key, 0, 10)
    lines = _raw(b).split(b"\n")
    event = parse_canonical(lines[4])
    event["data"]["total_minor"] += 100
    lines[4] = canonical_bytes(event)
    payload, signature = resign(b"\n".join(lines), key)  # even a valid signature
    status, body = await post(session, receiver, b, payload=payload,
                              signature=signature)
    assert status == 422
    assert body["title"] == "Hash chain broken"
    assert await receiver.stored_seqs() == []


async def test_a_batch_that_does_not_continue_the_held_chain_is_refused(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        journal: Journal, session: aiohttp.ClientSession) -> None:
    await post(session, receiver, await batch(journal, key, 0, 10))
    other = await open_signed(tmp_path / "other.sqlite3", device_dir(tmp_path))
    await fill(other, 40, start=500, chunk=1)  # same seqs, different events
    try:
        later = await batch(other, key, 10, 5)
        overlap = await batch(other, key, 5, 10)
    finally:
        await other.close()
    assert (await post(session, receiver, later))[0] == 422
    status, body = await post(session, receiver, overlap)
    assert (status, body["title"]) == (409, "Conflicting history")
    assert await receiver.stored_seqs() == list(range(1, 11))


async def test_an_invalid_event_gets_422_naming_the_field(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    bad = await open_signed(tmp_path / "bad.sqlite3", device_dir(tmp_path))
    data = sale_data(1)
    data["lines"][0]["qty"] = "2"
    await bad.append("sale.completed", sale_data(0))
    await bad.append("sale.completed", data)
    await bad.seal()
    try:
        status, body = await post(session, receiver, await batch(bad, key, 0, 5))
    finally:
        await bad.close()
    assert status == 422
    assert body["field"] == "events[2].data.lines[0].qty"  # 0: key, 1: sale 0
    assert "integer" in body["detail"]
    assert await receiver.stored_seqs() == []


async def test_the_idempotency_key_must_match_the_signed_range(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    b = await batch(journal, key, 0, 5)
    forged = PreparedBatch(b.first_seq, b.last_seq, b.raw_bytes, b.payload,
                           b.signature, f"{STALL}:1-4")
    status, body = await post(session, receiver, forged)
    assert (status, body["field"]) == (422, protocol.IDEMPOTENCY_HEADER)


async def test_body_limit_after_inflating_gives_413(
        tmp_path: Path, journal: Journal, key: DeviceIdentity,
        session: aiohttp.ClientSession) -> None:
    rec = await Receiver(tmp_path / "small", max_batch_bytes=16384).start()
    await rec.enrol(key)
    try:
        b = await batch(journal, key, 0, 30)
        assert len(b.payload) < 16384 < b.raw_bytes
        status, body = await post(session, rec, b)
    finally:
        await rec.stop()
    assert status == 413
    assert body["status"] == 413


async def test_rate_limit_per_stall_answers_429_with_retry_after(
        tmp_path: Path, journal: Journal, key: DeviceIdentity,
        session: aiohttp.ClientSession) -> None:
    rec = await Receiver(tmp_path / "slow", rate_per_s=0.5, burst=2).start()
    await rec.enrol(key)
    try:
        b = await batch(journal, key, 0, 5)
        statuses = [(await post(session, rec, b))[0] for _ in range(3)]
        headers = {"Content-Type": protocol.CONTENT_TYPE,
                   "Content-Encoding": "deflate",
                   protocol.SIGNATURE_HEADER: b.signature,
                   protocol.IDEMPOTENCY_HEADER: b.key}
        async with session.post(rec.url + protocol.batch_path(STALL),
                                data=b.payload, headers=headers) as resp:
            retry_after = resp.headers.get("Retry-After")
    finally:
        await rec.stop()
    assert statuses == [200, 200, 429]
    assert retry_after is not None and int(retry_after) >= 1


async def test_invoices_are_built_from_sales(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await post(session, receiver, await batch(journal, key, 0, 30))
    async with session.get(f"{receiver.url}/v1/stalls/{STALL}/invoices",
                           params={"limit": "10"}) as resp:
        page = await resp.json()
    assert [inv["seq"] for inv in page["items"]] == list(range(2, 12))  # 1: key
    assert page["next_after_seq"] == 11
    async with session.get(f"{receiver.url}/v1/stalls/{STALL}/invoices/s00000001"
                           ) as resp:
        invoice = await resp.json()
    sale = sale_data(1)
    assert invoice["total_minor"] == sale["total_minor"]
    assert invoice["taxes"] == sale["taxes"]
    assert invoice["net_minor"] + invoice["tax_minor"] == sale["total_minor"]
    assert invoice["payments"] == [{"method": "cash",
                                    "amount_minor": sale["total_minor"],
                                    "tendered_minor": sale["total_minor"]}]
    assert invoice["lines"][0]["sku"] == "BROT"
    async with session.get(f"{receiver.url}/v1/stalls/{STALL}/invoices/nope") as r:
        assert r.status == 404


async def test_one_time_enrolment_token(
        tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession) -> None:
    token = await receiver.storage.create_enrolment_token("stall-new", 60)
    device = identity(tmp_path)
    url = f"{receiver.url}/v1/stalls/stall-new/enrol"
    body = {"token": token, "public_key": device.public_b64()}
    async with session.post(url, json=body) as resp:
        assert resp.status == 201
    async with session.post(url, json=body) as resp:
        assert resp.status == 401
    async with session.post(url, json={"token": "x", "public_key": "abc"}) as resp:
        assert (resp.status, (await resp.json())["field"]) == (422, "public_key")
    stall = await receiver.storage.get_stall("stall-new")
    assert stall is not None and stall.public_key == device.public_bytes


async def test_problem_documents_are_json(receiver: Receiver,
                                          session: aiohttp.ClientSession) -> None:
    async with session.get(f"{receiver.url}/v1/stalls/ghost") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert json.loads(await resp.text())["status"] == 404
