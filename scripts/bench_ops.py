"""Appliance benchmarks (#7): bytes written per market day, start to READY on a
big journal, resident memory after an hour of trading. Called by bench.py."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from scripts.daemonproc import DaemonProcess, run_cli, write_config

CATALOG = (b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
           b"SEIFE,Seife,\"5,90\",standard\n")
DAY_SALES = 1440  # 8 hours at one sale per 20 s
HOUR_SALES = 180
PACE_S = 0.25  # compressed time: each receipt finishes printing before the next
# At one sale per 20 s every sale commit is sealed (SEAL_INTERVAL_S is 5 s);
# compressed time would seal fewer, so the launcher seals every commit.
LAUNCHER = ("-c", "import sys, daemon.journal.store as s; s.SEAL_INTERVAL_S = 0.0;"
            " from daemon.cli import main; sys.exit(main(sys.argv[1:]))")


def _io_write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/<pid>/io")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Trading:
    """A real daemon with a simulated printer on a pty, a paired till, a catalog."""

    def __init__(self, root: Path) -> None:
        from device.sim.printer import SimulatedPrinter

        root.mkdir(parents=True, exist_ok=True)
        self.state = root / "state"
        self.printer = SimulatedPrinter(baudrate=115200, link_path=root / "printer")
        self.printer.__enter__()
        extra = f'[printer]\nport = "{self.printer.port_path}"\nbaudrate = 115200\n'
        config = write_config(root / "stallbox.toml", self.state, extra)
        self.daemon = DaemonProcess(config, launcher=LAUNCHER)
        code = run_cli("pair", "--state", str(self.state)).stdout.split()[-1]
        self.token = asyncio.run(self._pair(code))
        (root / "catalog.csv").write_bytes(CATALOG)
        run_cli("import-catalog", str(root / "catalog.csv"), "--state", str(self.state))

    async def _pair(self, code: str) -> str:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(self.daemon.url + "api/v1/pair",
                                      json={"code": code, "name": "bench"})
            return str((await resp.json())["token"])

    async def sell(self, count: int) -> None:
        """Sell count sales one after another, PACE_S apart."""
        headers = {"Authorization": f"Bearer {self.token}"}
        body: dict[str, Any] = {"lines": [{"sku": "TEE", "qty": 2},
                                          {"sku": "SEIFE", "qty": 1}],
                                "payment": {"method": "cash", "tendered_minor": 2000}}
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(count):
                resp = await session.post(self.daemon.url + "api/v1/sales",
                                          json={**body, "client_ref": uuid.uuid4().hex})
                if resp.status != 201:
                    raise RuntimeError(f"sale failed: {resp.status}")
                await asyncio.sleep(PACE_S)

    def wait_printed(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.printer.receipts) < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self.daemon.terminate()
        self.printer.__exit__(None, None, None)


def _sale_bytes(state: Path) -> int:
    conn = sqlite3.connect(state / "journal.sqlite3")
    row = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events"
                       " WHERE kind = 'sale.completed'").fetchone()
    conn.close()
    return int(row[0])


def market_day(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Bytes written by the daemon process for a market day's sales and prints."""
    sales = DAY_SALES // 24 if quick else DAY_SALES
    scale = DAY_SALES / sales
    stall = Trading(root / "wear")
    pid = stall.daemon.proc.pid
    before = _io_write_bytes(pid)
    asyncio.run(stall.sell(sales))
    stall.wait_printed(sales)
    time.sleep(1.0)
    written = _io_write_bytes(pid) - before
    idle_before = _io_write_bytes(pid)
    time.sleep(12.0)  # two printer status polls, nothing to journal
    idle = _io_write_bytes(pid) - idle_before
    stall.stop()
    own = _sale_bytes(stall.state)
    day_mb = written * scale / 1e6
    return [
        figure(f"bytes written per market day ({DAY_SALES} sales, printed)", day_mb,
               "MB", "sale events themselves", own * scale / 1e6, "< 50 MB beyond"),
        figure("bytes written while idle, 12 s of printer polls", idle / 1e3, "kB",
               "", None, "0 (unchanged status never written)"),
    ]


def _build_big_journal(state: Path, sales: int) -> None:
    """Append valid, sealed cash sales through the journal's own path."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from scripts.bench import _build_journal

    asyncio.run(_build_journal(state, sales))


def start_and_memory(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Start to READY on a big journal; RSS after an hour of trading."""
    sales = 5_000 if quick else 1_000_000
    state = root / "big" / "state"
    _build_big_journal(state, sales)
    config = write_config(root / "big" / "stallbox.toml", state)
    start = time.perf_counter()
    daemon = DaemonProcess(config)
    ready_s = time.perf_counter() - start
    daemon.terminate()
    hour = HOUR_SALES // 12 if quick else HOUR_SALES
    stall = Trading(root / "hour")
    asyncio.run(stall.sell(hour))
    stall.wait_printed(hour)
    rss = _rss_mb(stall.daemon.proc.pid)
    stall.stop()
    return [figure(f"start to ready, {sales} sales", ready_s * 1000, "ms", "", None,
                   "≤ 1000 ms"),
            figure(f"resident memory after {hour} sales + prints (an hour"
                   f"{' ÷ 12' if quick else ''})", rss, "MB", "", None, "≤ 80 MB")]
