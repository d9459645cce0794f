"""The split verify (two processes) on a journal a running daemon keeps writing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.trust.replay import replay_observers
from scripts.daemonproc import DaemonProcess, write_config

pytestmark = pytest.mark.slow
CATALOG = b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"


async def _sell_until(url: str, token: str, stop: asyncio.Event) -> int:
    sold = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            resp = await session.post(
                url + "api/v1/sales", headers={"Authorization": f"Bearer {token}"},
                json={"client_ref": uuid.uuid4().hex,
                      "lines": [{"sku": "TEE", "qty": 1}],
                      "payment": {"method": "cash", "tendered_minor": 500}})
            assert resp.status == 201, await resp.text()
            sold += 1
    return sold


async def test_split_verify_while_the_daemon_sells(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state)
    daemon = await asyncio.to_thread(DaemonProcess, config)
    try:
        token = await asyncio.to_thread(daemon.stock_and_pair, state, CATALOG,
                                        name="Till")
        stop = asyncio.Event()
        selling = asyncio.create_task(_sell_until(daemon.url, token, stop))
        await asyncio.sleep(0.5)
        device = DeviceIdentity.load_or_create(state).public_bytes
        results = []
        for _ in range(3):
            results.append(await asyncio.to_thread(
                verify_journal, state / "journal.sqlite3", device,
                observers=replay_observers(), processes=2))
        stop.set()
        sold = await selling
    finally:
        assert await asyncio.to_thread(daemon.terminate) == 0
    assert sold > 3
    for result in results:
        assert result.ok, result.reason
    assert results[-1].head_seq > results[0].head_seq  # it ran while sales came in
