"""Soak: a 100 000-event backlog through random faults, bounded in time."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from daemon.keys.device import DeviceIdentity
from tests.faultproxy import FaultProxy, random_fault
from tests.synchelpers import Receiver, device_dir, fill, open_signed, worker
from tests.test_sync_faults import assert_exactly_once, drain

SOAK_EVENTS = 100_000
FAULT_RATE = 0.15
SOAK_BUDGET_S = 55.0


@pytest.mark.timeout(90)
async def test_soak_100k_events_with_random_faults(tmp_path: Path) -> None:
    started = time.monotonic()
    journal = await open_signed(tmp_path / "journal.sqlite3", device_dir(tmp_path))
    key = DeviceIdentity.load_or_create(device_dir(tmp_path))
    receiver = await Receiver(tmp_path / "receiver").start()
    await receiver.enrol(key)
    proxy = await FaultProxy(receiver.port).start()
    rng = random.Random(5)
    proxy.chooser = lambda: random_fault(rng, FAULT_RATE, delay_s=0.5)
    w = worker(journal, proxy.url, key, request_timeout_s=0.3)
    try:
        await fill(journal, SOAK_EVENTS, chunk=1000)  # as the writer seals
        await w.start()
        await drain(w, journal, timeout_s=SOAK_BUDGET_S - (time.monotonic() - started))
        await w.stop()
        await assert_exactly_once(receiver, journal)
        faults = [kind for kind in proxy.applied if kind != "pass"]
        assert len(set(faults)) >= 6, faults  # most kinds of fault were hit
    finally:
        await w.stop()
        await proxy.close()
        await receiver.stop()
        await journal.close()
    assert time.monotonic() - started < SOAK_BUDGET_S
