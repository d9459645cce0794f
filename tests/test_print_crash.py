"""print.done rides with the next commit (#7): a power cut before it is
journaled reprints the receipt once, marked REPRINT; never a silent duplicate."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from device.sim.printer import SimulatedPrinter
from scripts.daemonproc import DaemonProcess, run_cli, write_config
from tests.test_crash import CATALOG, _pair

pytestmark = pytest.mark.slow
WAIT_S = 20.0


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def _sell(url: str, token: str) -> dict[str, Any]:
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": "TEE", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}}
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}) as session:
        resp = await session.post(url + "api/v1/sales", json=body)
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def _jobs(url: str, token: str, sale_id: str) -> list[str]:
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}) as session:
        resp = await session.get(url + f"api/v1/sales/{sale_id}")
        return [job["status"] for job in (await resp.json())["print_jobs"]]


async def _metrics(url: str, token: str) -> str:
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"}) as session:
        resp = await session.get(url + "metrics")
        assert resp.status == 200
        return await resp.text()


def _kinds(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [k for (k,) in conn.execute(
            "SELECT kind FROM events WHERE kind LIKE 'print.%' ORDER BY seq")]
    finally:
        conn.close()


def test_power_cut_before_print_done_is_journaled_reprints_marked(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "printer") as printer:
        extra = f'[printer]\nport = "{printer.port_path}"\nbaudrate = 115200\n'
        config = write_config(tmp_path / "stallbox.toml", state, extra)
        daemon = DaemonProcess(config)
        try:
            token = _pair(state, daemon.url)
            (tmp_path / "catalog.csv").write_bytes(CATALOG)
            run_cli("import-catalog", str(tmp_path / "catalog.csv"), "--state",
                    str(state))
            sale = asyncio.run(_sell(daemon.url, token))
            _wait(lambda: len(printer.receipts) == 1, "the receipt")
            # Printed, reported printed, not yet journaled: the next commit
            # (or PRINT_DONE_DELAY_S) would carry print.done. The printer has
            # the bytes a moment before the daemon reads its status reply.
            _wait(lambda: asyncio.run(_jobs(daemon.url, token, sale["id"]))
                  == ["printed"], "the job reported printed")
            assert _kinds(state / "journal.sqlite3") == ["print.started"]
            assert "\nstallbox_print_queue_jobs 0\n" in asyncio.run(
                _metrics(daemon.url, token))
        finally:
            daemon.kill()  # the power cut
        daemon = DaemonProcess(config)
        try:
            _wait(lambda: len(printer.receipts) == 2, "the reprint")
            assert "REPRINT" not in printer.receipts[0]
            assert "REPRINT" in printer.receipts[1]
            assert sale["id"] in printer.receipts[1]
            _wait(lambda: asyncio.run(_jobs(daemon.url, token, sale["id"]))
                  == ["interrupted", "printed"], "the jobs' states")
        finally:
            daemon.terminate()
    kinds = _kinds(state / "journal.sqlite3")
    assert kinds == ["print.started", "print.interrupted", "print.reprint_requested",
                     "print.started", "print.done"]
