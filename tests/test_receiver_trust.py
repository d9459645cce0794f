"""The receiver trusts seals, certificates and heads: truncation and forgeries."""

from __future__ import annotations

import shutil
import sqlite3
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from daemon.journal.canonical import canonical_bytes, chain_hash, parse_canonical
from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from sync import protocol
from sync.outbox import Outbox, PreparedBatch
from tests.synchelpers import (
    STALL,
    Receiver,
    device_dir,
    fill,
    open_signed,
    running_receiver,
    worker,
)
from tests.test_receiver_ingest import post


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


async def synced_journal(tmp_path: Path, key: DeviceIdentity, rec: Receiver,
                         sales: int) -> Path:
    """Sell, sync everything, close; return the journal file."""
    path = tmp_path / "journal.sqlite3"
    journal = await open_signed(path, device_dir(tmp_path))
    await fill(journal, sales, chunk=10)
    w = worker(journal, rec.url, key)
    await w.start()
    try:
        assert (await w.sync_now())["state"] == "idle"
    finally:
        await w.stop()
    await journal.close()
    return path


def cut_tail(path: Path, copy: Path, events: int) -> int:
    """Copy a journal and remove its last events and their seals; return the head."""
    shutil.copy(path, copy)
    conn = sqlite3.connect(copy)
    try:
        head = conn.execute("SELECT max(seq) FROM events").fetchone()[0] - events
        conn.execute("DROP TRIGGER events_append_only_delete")
        conn.execute("DROP TRIGGER seals_append_only_delete")
        conn.execute("DELETE FROM events WHERE seq > ?", (head,))
        conn.execute("DELETE FROM seals WHERE seq > ?", (head,))
        conn.commit()
    finally:
        conn.close()
    return int(head)


@pytest.mark.parametrize("cursor_behind", [False, True])
async def test_a_journal_that_lost_its_last_events_is_caught_on_the_next_sync(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        cursor_behind: bool) -> None:
    path = await synced_journal(tmp_path, key, receiver, 40)
    held = (await receiver.stored_seqs())[-1]
    head = cut_tail(path, tmp_path / "cut.sqlite3", 3)
    if cursor_behind:  # the cursor read model was lost with the tail
        conn = sqlite3.connect(tmp_path / "cut.sqlite3")
        conn.execute("UPDATE sync_cursor SET acked_seq = 20")
        conn.commit()
        conn.close()
    journal = Journal.open(tmp_path / "cut.sqlite3")
    w = worker(journal, receiver.url, key)
    await w.start()
    try:
        status = await w.sync_now()
    finally:
        await w.stop()
        await journal.close()
    assert status["state"] == "parked", status
    assert f"ends at seq {head}" in status["last_error"]
    assert "removed" in status["last_error"]
    stall = await receiver.storage.get_stall(STALL)
    assert stall is not None and f"reached seq {held}" in stall.alarm
    assert stall.status()["alarm"]
    assert (await receiver.stored_seqs())[-1] == held  # nothing changed


async def one_batch(journal: Journal, key: DeviceIdentity, events: int) -> bytes:
    outbox = Outbox(journal.path, STALL, key.sign, max_events=events)
    try:
        prepared = await outbox.prepare(0)
    finally:
        await outbox.close()
    assert prepared is not None
    return zlib.decompress(prepared.payload)


def rebuilt(raw: bytes, key: DeviceIdentity, edit_header: bool = True,
            **changes: object) -> PreparedBatch:
    """Re-chain a (changed) batch body and sign it with the device key."""
    head_line, *lines = raw.split(b"\n")
    header = parse_canonical(head_line)
    prev = bytes.fromhex(header["prev_hash"])
    for line in lines:
        prev = chain_hash(prev, line)
    if edit_header:
        header["last_hash"] = prev.hex()
    header.update(changes)
    body = b"\n".join([canonical_bytes(header), *lines])
    return PreparedBatch(header["first_seq"], header["last_seq"], len(body),
                         zlib.compress(body), protocol.sign_batch(key.sign, body),
                         protocol.idempotency_key(STALL, header["first_seq"],
                                                  header["last_seq"]))


def with_amount(raw: bytes, index: int) -> bytes:
    lines = raw.split(b"\n")
    event = parse_canonical(lines[index])
    event["data"]["total_minor"] += 100
    lines[index] = canonical_bytes(event)
    return b"\n".join(lines)


async def test_an_edit_signed_with_the_device_key_fails_the_seal(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    journal = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
    await fill(journal, 20, chunk=20)
    raw = await one_batch(journal, key, 100)
    await journal.close()
    forged = rebuilt(with_amount(raw, 5), key)
    status, body = await post(session, receiver, forged)
    assert (status, body["title"]) == (422, "Journal signature check failed")
    assert "seal" in body["detail"]
    header = parse_canonical(zlib.decompress(forged.payload).split(b"\n")[0])
    seal = header["seals"][-1]
    seal[2] = header["last_hash"]  # claim the seal signed the edited chain
    status, body = await post(session, receiver, rebuilt(
        with_amount(raw, 5), key, seals=header["seals"]))
    assert (status, body["title"]) == (422, "Journal signature check failed")
    assert "signature" in body["detail"]
    assert await receiver.stored_seqs() == []


async def test_unsealed_v1_and_foreign_key_batches_are_refused(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    journal = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
    await fill(journal, 10, chunk=10)
    raw = await one_batch(journal, key, 100)
    await journal.close()
    status, body = await post(session, receiver, rebuilt(raw, key, seals=[]))
    assert (status, body["title"]) == (422, "Unsealed batch")
    status, body = await post(session, receiver, rebuilt(raw, key, v=1))
    assert (status, body["field"]) == (422, "header.v")

    other_dir = tmp_path / "other-device"
    other_dir.mkdir()
    stranger = await open_signed(tmp_path / "other.sqlite3", other_dir)
    await fill(stranger, 10, chunk=10)
    foreign = await one_batch(stranger, key, 100)  # posted with our device key
    await stranger.close()
    status, body = await post(session, receiver, rebuilt(foreign, key))
    assert (status, body["title"]) == (422, "Journal signature check failed")
    assert "certificate" in body["detail"]
    assert await receiver.stored_seqs() == []


async def test_a_stale_head_push_with_a_good_signature_only(
        tmp_path: Path, key: DeviceIdentity, receiver: Receiver,
        session: aiohttp.ClientSession) -> None:
    await synced_journal(tmp_path, key, receiver, 10)
    raw = protocol.encode_head(STALL, protocol.Head(3, bytes(32)), {})
    headers = {protocol.SIGNATURE_HEADER: protocol.sign_batch(key.sign, raw)}
    url = receiver.url + protocol.head_path(STALL)
    async with session.post(url, data=raw, headers=headers) as resp:
        assert resp.status == 401  # signed as a batch, not as a head
    headers = {protocol.SIGNATURE_HEADER: protocol.sign_batch(key.sign, raw,
                                                              head=True)}
    async with session.post(url, data=raw, headers=headers) as resp:
        problem = await resp.json()
    assert (resp.status, problem["type"]) == (409, protocol.TRUNCATED_TYPE)
