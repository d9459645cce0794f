"""The sync worker: cursor, single flight, parking, rewind, restarts, clock jumps."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from sync import cursor
from sync.client import SyncWorker
from sync.errors import BatchRejected
from tests.synchelpers import (
    STALL,
    Receiver,
    device_dir,
    fill,
    open_signed,
    running_receiver,
    worker,
)
from tests.test_sync_faults import assert_exactly_once, drain


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
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
async def running(journal: Journal, receiver: Receiver,
                  key: DeviceIdentity) -> AsyncIterator[SyncWorker]:
    w = worker(journal, receiver.url, key)
    await w.start()
    yield w
    await w.stop()


def ack_events(journal: Journal) -> int:
    conn = sqlite3.connect(journal.path)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE kind = ?",
                            (cursor.ACK_KIND,)).fetchone()[0]
    finally:
        conn.close()


async def test_an_idle_stall_does_not_churn(journal: Journal, receiver: Receiver,
                                            running: SyncWorker) -> None:
    await fill(journal, 20)
    await running.sync_now()
    head = journal.head_seq
    assert head == 22  # the epoch key, 20 sales and one sync.acked, shipped too
    for _ in range(3):
        status = await running.sync_now()
    assert journal.head_seq == head
    assert (status["acked_seq"], status["backlog"]) == (head, 0)
    assert ack_events(journal) == 1
    await fill(journal, 1, start=100)
    await running.sync_now()
    assert ack_events(journal) == 2 and running.acked_seq == journal.head_seq
    await assert_exactly_once(receiver, journal)


def test_cursor_policy_counts_only_real_events() -> None:
    saved = cursor.Cursor(acked_seq=20, event_seq=21)
    assert cursor.real_events_acked(saved, 21) == 0
    assert cursor.real_events_acked(saved, 22) == 1
    assert not cursor.should_persist(saved, 21, caught_up=True, since_last_s=999)
    assert not cursor.should_persist(saved, 22, caught_up=False, since_last_s=1)
    assert cursor.should_persist(saved, 22, caught_up=False, since_last_s=31)
    assert cursor.should_persist(saved, 22, caught_up=True, since_last_s=0)


async def test_sync_now_joins_the_running_round(journal: Journal,
                                                running: SyncWorker) -> None:
    await running.sync_now()  # the start-up round
    await fill(journal, 500)
    first, second = running.sync_now(), running.sync_now()
    assert first is second
    await first
    assert running.status.rounds == 2  # the start-up round and this one


async def test_restart_resumes_from_the_journaled_cursor(
        journal: Journal, receiver: Receiver, key: DeviceIdentity) -> None:
    await fill(journal, 300)
    w = worker(journal, receiver.url, key)
    await w.start()
    await w.sync_now()
    await w.stop()
    await fill(journal, 300, start=300)
    again = worker(journal, receiver.url, key)
    await again.start()
    assert again.acked_seq >= 300
    await drain(again, journal)
    await again.stop()
    await assert_exactly_once(receiver, journal)


async def test_receiver_restarted_with_its_database_accepts_the_resumed_stream(
        journal: Journal, receiver: Receiver, running: SyncWorker) -> None:
    await fill(journal, 200)
    await running.sync_now()
    await receiver.stop()
    await fill(journal, 200, start=200)
    assert (await running.sync_now())["state"] == "backoff"
    await receiver.start()
    await drain(running, journal)
    await assert_exactly_once(receiver, journal)


async def test_a_receiver_that_lost_data_gets_the_stream_again(
        tmp_path: Path, journal: Journal, key: DeviceIdentity,
        running: SyncWorker, receiver: Receiver) -> None:
    await fill(journal, 100)
    await running.sync_now()
    await receiver.stop()
    fresh = await Receiver(tmp_path / "restored", port=receiver.port).start()
    await fresh.enrol(key)
    await fill(journal, 10, start=100)
    await drain(running, journal)  # gap answer: rewinds to seq 1
    await assert_exactly_once(fresh, journal)
    await fresh.stop()
    await receiver.start()  # the fixture stops it


async def test_a_refused_batch_parks_until_a_person_retries(
        tmp_path: Path, journal: Journal, key: DeviceIdentity) -> None:
    refusing = True

    def schema_v2(stall: object, batch: object) -> None:
        if refusing:
            raise BatchRejected(422, "Invalid batch", "events[0].data.x is required",
                                field="events[0].data.x")

    rec = await Receiver(tmp_path / "strict", verifiers=[schema_v2]).start()
    await rec.enrol(key)
    w = worker(journal, rec.url, key)
    await w.start()
    try:
        await fill(journal, 10)
        status = await w.sync_now()
        assert status["state"] == "parked"
        assert "events[0].data.x is required" in status["last_error"]
        assert (await w.sync_now())["state"] == "parked"  # a timer does not unpark
        refusing = False
        status = await w.retry()
        assert (status["state"], status["backlog"]) == ("idle", 0)
    finally:
        await w.stop()
        await rec.stop()


async def test_a_broken_local_chain_parks_and_sends_nothing(
        journal: Journal, receiver: Receiver, key: DeviceIdentity) -> None:
    # The worker starts only after the tampering: a running worker's start-up
    # round could ship the untouched events first, and then nothing is left to park.
    await fill(journal, 5)
    conn = sqlite3.connect(journal.path)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET body = CAST(replace(CAST(body AS TEXT),"
                 " '\"total_minor\":', '\"total_minor\":9') AS BLOB) WHERE seq = 3")
    conn.commit()
    conn.close()
    w = worker(journal, receiver.url, key)
    await w.start()
    try:
        status = await w.sync_now()
    finally:
        await w.stop()
    assert status["state"] == "parked"
    assert "chain broken at seq 3" in status["last_error"]
    assert await receiver.stored_seqs() == []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make the journal's wall clock read from a list, as a jumping clock would."""
    times: list[str] = []
    monkeypatch.setattr("daemon.journal.store.utc_now", lambda: times.pop(0))
    yield times


async def test_a_clock_jumped_backwards_reorders_nothing(
        journal: Journal, receiver: Receiver, running: SyncWorker,
        clock: list[str]) -> None:
    clock.extend(["2031-05-01T10:00:00.000000Z", "2031-05-01T10:00:01.000000Z",
                  "2020-01-01T00:00:00.000000Z", "2020-01-01T00:00:01.000000Z",
                  "2020-01-01T00:00:02.000000Z"])
    await fill(journal, 5)
    clock.extend(["2025-01-01T00:00:00.000000Z"] * 5)
    await running.sync_now()
    async with asyncio.timeout(5):
        invoices = await receiver.storage.invoices(STALL, 0, 10)
    assert [inv["seq"] for inv in invoices] == [2, 3, 4, 5, 6]  # 1: epoch key
    assert [inv["sale_id"] for inv in invoices] == [f"s{n:08d}" for n in range(5)]
    assert invoices[2]["device_ts"] < invoices[1]["device_ts"]
    stall = await receiver.storage.get_stall(STALL)
    assert stall is not None
    assert stall.clock_state["behind_journal"] is True  # now < a 2031 event
