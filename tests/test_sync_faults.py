"""Client against the real receiver through a fault-injecting proxy: exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from sync.client import SyncWorker
from tests.faultproxy import (
    DELAY,
    DROP_AFTER,
    DROP_BEFORE,
    STATUS,
    TRUNCATE,
    Fault,
    FaultProxy,
)
from tests.synchelpers import (
    STALL,
    Receiver,
    device_dir,
    fill,
    open_signed,
    running_receiver,
    worker,
)

EVENTS = 1200
BATCH_EVENTS = 200


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
async def proxy(receiver: Receiver) -> AsyncIterator[FaultProxy]:
    fp = await FaultProxy(receiver.port).start()
    yield fp
    await fp.close()


async def started(journal: Journal, url: str, key: DeviceIdentity,
                  **settings: Any) -> SyncWorker:
    w = worker(journal, url, key, **settings)
    w._outbox.max_events = BATCH_EVENTS
    await w.start()
    return w


async def drain(w: SyncWorker, journal: Journal, timeout_s: float = 20.0) -> None:
    """Sync until the receiver acknowledged the whole journal."""
    async with asyncio.timeout(timeout_s):
        while w.acked_seq < journal.head_seq:
            await w.sync_now()
            if w.status.state == "backoff":
                await asyncio.sleep(0.01)


async def wait_for_state(w: SyncWorker, state: str) -> None:
    """Poll the worker's state (it has no event to wait on, by design)."""
    for _ in range(10_000):
        if w.status.state == state:
            return
        await asyncio.sleep(0.01)


async def assert_exactly_once(receiver: Receiver, journal: Journal) -> None:
    seqs = await receiver.stored_seqs()
    assert seqs == list(range(1, journal.head_seq + 1))
    checked, fault = await receiver.storage.verify_chain(STALL)
    assert (checked, fault) == (journal.head_seq, "")
    stall = await receiver.storage.get_stall(STALL)
    assert stall is not None and stall.events_stored == journal.head_seq


FAULTS = {
    "drop before the receiver": [Fault(DROP_BEFORE)] * 3,
    "drop after the receiver committed": [Fault(DROP_AFTER)] * 3,
    "answer delayed past the client timeout": [Fault(DELAY, delay_s=0.6)] * 2,
    "500": [Fault(STATUS, 500)] * 2,
    "503 with Retry-After": [Fault(STATUS, 503, retry_after="0")] * 2,
    "429 without Retry-After": [Fault(STATUS, 429)] * 2,
    "429 with Retry-After": [Fault(STATUS, 429, retry_after="0")],
    "truncated answer": [Fault(TRUNCATE)] * 3,
    "everything in a row": [Fault(DROP_AFTER), Fault(TRUNCATE), Fault(DROP_BEFORE),
                            Fault(STATUS, 503), Fault(DELAY, delay_s=0.6),
                            Fault(DROP_AFTER)],
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=list(FAULTS))
async def test_every_fault_sequence_stores_each_event_once(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        proxy: FaultProxy, faults: list[Fault]) -> None:
    await fill(journal, EVENTS)
    proxy.faults.extend(faults)
    w = await started(journal, proxy.url, key, request_timeout_s=0.3)
    try:
        await drain(w, journal)
    finally:
        await w.stop()
    assert not proxy.faults, "every scripted fault was hit"
    await assert_exactly_once(receiver, journal)


async def test_retry_after_is_honoured(journal: Journal, key: DeviceIdentity,
                                       receiver: Receiver, proxy: FaultProxy) -> None:
    await fill(journal, 10)
    proxy.faults.append(Fault(STATUS, 503, retry_after="30"))
    w = await started(journal, proxy.url, key)
    try:
        status = await w.sync_now()
        assert status["state"] == "backoff"
        assert w._delay is not None and w._delay >= 30
        assert status["next_attempt"]
    finally:
        await w.stop()


async def test_network_change_cuts_the_backoff_short(
        journal: Journal, key: DeviceIdentity, receiver: Receiver,
        proxy: FaultProxy) -> None:
    await fill(journal, 10)
    proxy.faults.append(Fault(STATUS, 503, retry_after="600"))
    w = await started(journal, proxy.url, key)
    try:
        await w.sync_now()
        assert w.status.state == "backoff"
        w.network_changed()
        async with asyncio.timeout(5):
            await wait_for_state(w, "idle")
    finally:
        await w.stop()
    await assert_exactly_once(receiver, journal)


async def test_receiver_down_then_up(tmp_path: Path, journal: Journal,
                                     key: DeviceIdentity) -> None:
    rec = Receiver(tmp_path / "later")
    await rec.start()
    await rec.enrol(key)
    url = rec.url
    await rec.stop()  # nothing listens: connection refused, as offline looks
    await fill(journal, 50)
    w = await started(journal, url, key)
    try:
        status = await w.sync_now()
        assert status["state"] == "backoff" and "network" in status["last_error"]
        await rec.start()
        await drain(w, journal)
    finally:
        await w.stop()
    await assert_exactly_once(rec, journal)
    await rec.stop()
