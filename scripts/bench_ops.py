"""Appliance benchmarks (#7): bytes written per market day, start to READY on a
big journal, resident memory after an hour of trading. Called by bench.py."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from scripts.daemonproc import DaemonProcess, run_cli, write_config

CATALOG = (b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
           b"SEIFE,Seife,\"5,90\",standard\n")
DAY_SALES = 1440  # 8 hours at one sale per 20 s
HOUR_SALES = 180
PACE_S = 0.25  # compressed time: each receipt finishes printing before the next
# SD-card wear in compressed time. A real day is a sale every 20 s; the bench
# sells one every PACE_S and shrinks every timer of the daemon by the same
# factor (seal interval and idle-tail seal tick, WAL trim, printer status poll,
# sync interval and cursor persist interval), so the commits a real day makes,
# in the same order, are made here too. The kernel's writeback is not
# compressed: see docs/appliance.md for what that leaves out.
COMPRESS = 20.0 / PACE_S
TIMERS = {"daemon.journal.store": ("SEAL_INTERVAL_S", "WAL_TRIM_INTERVAL_S",
                                   "WRITER_IDLE_S"),
          "daemon.trust.lifecycle": ("SEAL_INTERVAL_S", "KEY_TICK_S"),
          "daemon.printing": ("PRESENCE_POLL_S", "PRESENCE_POLL_MAX_S",
                              "PRINT_DONE_DELAY_S"),
          "sync.cursor": ("PERSIST_INTERVAL_S",)}
SYNC_INTERVAL_S = 30.0
TABLET_POLL_S = 5.0
BENCH_PIN = "246810"


def launcher(factor: float) -> tuple[str, ...]:
    """Python -c code that shrinks the daemon's timers by factor, then serves."""
    lines = ["import dataclasses, importlib, sys"]
    for module, names in TIMERS.items():
        real = importlib.import_module(module)
        lines.append(f"m = importlib.import_module({module!r})")
        lines += [f"m.{name} = {getattr(real, name) / factor!r}" for name in names]
    lines += ["import sync.service as ss",
              "settings = ss.settings_from",
              "ss.settings_from = lambda c: dataclasses.replace("
              f"settings(c), interval_s={SYNC_INTERVAL_S / factor!r})",
              "from daemon.cli import main", "sys.exit(main(sys.argv[1:]))"]
    return ("-c", "\n".join(lines))


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
    """A real daemon with a paired till and a catalog; optionally a simulated
    printer on a pty and a sync receiver on loopback."""

    def __init__(self, root: Path, *, printer: bool = True, sync: bool = False,
                 factor: float = 1.0) -> None:
        from device.sim.printer import SimulatedPrinter

        root.mkdir(parents=True, exist_ok=True)
        self.state = root / "state"
        self.printer: Any = None
        self.receiver: Any = None
        extra = ""
        if printer:
            self.printer = SimulatedPrinter(baudrate=115200, link_path=root / "printer")
            self.printer.__enter__()
            extra += (f'[printer]\nport = "{self.printer.port_path}"\n'
                      'baudrate = 115200\n')
        if sync:
            extra += self._start_receiver(root)
        config = write_config(root / "stallbox.toml", self.state, extra)
        self.daemon = DaemonProcess(config, launcher=launcher(factor))
        code = run_cli("pair", "--state", str(self.state)).stdout.split()[-1]
        self.token = asyncio.run(self._pair(code))
        (root / "catalog.csv").write_bytes(CATALOG)
        run_cli("import-catalog", str(root / "catalog.csv"), "--state", str(self.state))

    def _start_receiver(self, root: Path) -> str:
        """Enroll this stall's device key at a loopback receiver; return [sync]."""
        from daemon.keys.device import DeviceIdentity
        from scripts.bench_sync import ReceiverProcess
        from sync.receiver.admin import enroll

        self.state.mkdir(parents=True, exist_ok=True)
        key = DeviceIdentity.load_or_create(self.state).public_b64()
        enroll(root / "receiver", "wear", key)
        self.receiver = ReceiverProcess(root / "receiver")
        return f'[sync]\nurl = "{self.receiver.url}"\nstall_id = "wear"\n'

    async def _pair(self, code: str) -> str:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(self.daemon.url + "api/v1/pair",
                                      json={"code": code, "name": "bench"})
            return str((await resp.json())["token"])

    async def sell(self, count: int, pace_s: float = PACE_S,
                   poll_s: float | None = None) -> None:
        """Sell count sales one after another, pace_s apart; a second tablet
        polls /healthz every poll_s meanwhile (None: no polling)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        body: dict[str, Any] = {"lines": [{"sku": "TEE", "qty": 2},
                                          {"sku": "SEIFE", "qty": 1}],
                                "payment": {"method": "cash", "tendered_minor": 2000}}
        async with aiohttp.ClientSession(headers=headers) as session:
            poller = (asyncio.create_task(self._poll(session, poll_s))
                      if poll_s else None)
            for _ in range(count):
                resp = await session.post(self.daemon.url + "api/v1/sales",
                                          json={**body, "client_ref": uuid.uuid4().hex})
                if resp.status != 201:
                    raise RuntimeError(f"sale failed: {resp.status}")
                await asyncio.sleep(pace_s)
            if poller is not None:
                poller.cancel()

    async def _poll(self, session: aiohttp.ClientSession, every_s: float) -> None:
        while True:
            async with session.get(self.daemon.url + "healthz") as resp:
                await resp.read()
            await asyncio.sleep(every_s)

    def set_manager_pin(self) -> None:
        subprocess.run([sys.executable, "-m", "daemon.cli", "manager-pin", "--state",
                        str(self.state), "--pin-stdin"], input=BENCH_PIN + "\n",
                       text=True, check=True, capture_output=True, timeout=60,
                       cwd=Path(__file__).resolve().parent.parent)

    async def close_day(self) -> None:
        """Close the shift and the day as a manager does at the end of a market."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for path, body in (("api/v1/elevate", {"pin": BENCH_PIN}),
                               ("api/v1/shifts/close",
                                {"client_ref": uuid.uuid4().hex,
                                 "counted_cash_minor": 0}),
                               ("api/v1/days/close", {"client_ref": uuid.uuid4().hex})):
                async with session.post(self.daemon.url + path, json=body) as resp:
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"{path}: {resp.status} {await resp.text()}")

    def wait_printed(self, count: int, timeout_s: float = 60.0) -> None:
        if self.printer is None:
            return
        deadline = time.monotonic() + timeout_s
        while len(self.printer.receipts) < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self.daemon.terminate()
        if self.printer is not None:
            self.printer.__exit__(None, None, None)
        if self.receiver is not None:
            self.receiver.stop()


def _sale_bytes(state: Path) -> int:
    conn = sqlite3.connect(state / "journal.sqlite3")
    row = conn.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM events"
                       " WHERE kind = 'sale.completed'").fetchone()
    conn.close()
    return int(row[0])


def _kinds(state: Path) -> dict[str, int]:
    conn = sqlite3.connect(state / "journal.sqlite3")
    rows = conn.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall()
    conn.close()
    return dict(rows)


def _trade_day(root: Path, sales: int, *, full: bool,
               factor: float = COMPRESS) -> dict[str, Any]:
    """One day (compressed by factor); bytes written while trading and closing.

    full: printer with status polls, a tablet polling /healthz, sync to a
    loopback receiver, shift and day closed at the end. Otherwise the sales
    alone through the same daemon: no printer, no sync, no polling, no closures
    (the sale's queued print_jobs row is part of its transaction either way).
    """
    stall = Trading(root, printer=full, sync=full, factor=factor)
    pid = stall.daemon.proc.pid
    before = _io_write_bytes(pid)
    start = time.monotonic()
    pace_s = 20.0 / factor
    asyncio.run(stall.sell(sales, pace_s, TABLET_POLL_S / factor if full else None))
    stall.wait_printed(sales)
    time.sleep(SYNC_INTERVAL_S / factor * 3)  # the last round, its seal, a trim
    trading = _io_write_bytes(pid) - before
    elapsed_s = time.monotonic() - start
    closing = 0
    if full:
        stall.set_manager_pin()
        mark = _io_write_bytes(pid)
        asyncio.run(stall.close_day())
        closing = _io_write_bytes(pid) - mark
    stall.stop()
    return {"trading": trading, "closing": closing, "elapsed_s": elapsed_s,
            "sale_events": _sale_bytes(stall.state), "kinds": _kinds(stall.state)}


REAL_PACE_SALES = 30  # ten minutes at one sale per 20 s, timers not compressed


def market_day(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Bytes written by the daemon for a market day, and by its sales alone."""
    sales = DAY_SALES // 12 if quick else DAY_SALES  # quick: 40 minutes of a day
    scale = DAY_SALES / sales
    with ThreadPoolExecutor(4) as pool:  # daemons side by side, mostly asleep
        floor_run = pool.submit(_trade_day, root / "sales-only", sales, full=False)
        day_run = pool.submit(_trade_day, root / "full", sales, full=True)
        idle_run = pool.submit(_idle_bytes, root / "idle")
        real_run = None if quick else pool.submit(
            _trade_day, root / "real-pace", REAL_PACE_SALES, full=True, factor=1.0)
        floor, day, idle = floor_run.result(), day_run.result(), idle_run.result()
        real = real_run.result() if real_run is not None else None
    full_mb = (day["trading"] * scale + day["closing"]) / 1e6
    floor_mb = floor["trading"] * scale / 1e6
    events_mb = day["sale_events"] * scale / 1e6
    per_day = {k: round(v * scale) for k, v in day["kinds"].items()}
    print(f"  events per day: {per_day}", file=sys.stderr)
    figures = [
        figure(f"bytes written per market day ({DAY_SALES} sales, printed, synced)",
               full_mb, "MB", "the same sales alone (events, read models, WAL,"
               " checkpoints)", floor_mb, "< 50 MB beyond the sales"),
        figure("bytes written per market day beyond the sales (full − sales alone)",
               full_mb - floor_mb, "MB", "", None, "< 50 MB"),
        figure("bytes written per market day beyond the sale events' own bytes",
               full_mb - events_mb, "MB", "sale events' bytes", events_mb,
               "< 50 MB (strict reading)"),
        figure("bytes written while idle, 12 s of printer polls", idle / 1e3, "kB",
               "", None, "0 (unchanged status never written)"),
    ]
    if real is not None:  # the kernel's writeback (the mmapped -shm) included
        real_mb = real["trading"] / real["elapsed_s"] * 8 * 3600 / 1e6
        figures.append(figure(
            f"bytes per market day from {REAL_PACE_SALES} sales at the real pace"
            f" ({real['elapsed_s'] / 60:.0f} min × {8 * 3600 / real['elapsed_s']:.0f})",
            real_mb, "MB", "compressed full day", full_mb, "< 50 MB beyond the sales"))
    return figures


def _idle_bytes(root: Path) -> int:
    """Bytes written by an idle daemon with a printer for 12 s (two polls)."""
    stall = Trading(root, printer=True, sync=False)
    time.sleep(6.0)  # let start-up writes (catalog, its seal 5 s later) settle
    pid = stall.daemon.proc.pid
    before = _io_write_bytes(pid)
    time.sleep(12.0)
    idle = _io_write_bytes(pid) - before
    stall.stop()
    return idle


def _build_big_journal(state: Path, sales: int) -> None:
    """A real signed journal of cash sales, made by the daemon's own writer
    (scripts/make_journal.py, #6)."""
    from scripts.make_journal import build_journal

    asyncio.run(build_journal(state, sales))


def _start_ready(config: Path) -> tuple[float, float]:
    """Start a daemon; return seconds to READY and its RSS then (MB)."""
    start = time.perf_counter()
    daemon = DaemonProcess(config)
    ready_s = time.perf_counter() - start
    rss = _rss_mb(daemon.proc.pid)
    daemon.terminate()
    return ready_s, rss


def start_and_memory(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Start to READY on a big journal (and its RSS); RSS after an hour of trading."""
    sales = 5_000 if quick else 1_000_000
    state = root / "big" / "state"
    _build_big_journal(state, sales)
    size_mb = (state / "journal.sqlite3").stat().st_size / 1e6
    ready_s, rss_big = _start_ready(write_config(root / "big" / "stallbox.toml", state))
    (root / "empty").mkdir(parents=True, exist_ok=True)
    empty_s, _ = _start_ready(write_config(root / "empty" / "stallbox.toml",
                                           root / "empty" / "state"))
    hour = HOUR_SALES // 12 if quick else HOUR_SALES
    stall = Trading(root / "hour")
    asyncio.run(stall.sell(hour))
    stall.wait_printed(hour)
    rss = _rss_mb(stall.daemon.proc.pid)
    stall.stop()
    return [figure(f"start to ready, {sales} sales ({size_mb:.0f} MB journal)",
                   ready_s * 1000, "ms", "empty journal, same run", empty_s * 1000,
                   "≤ 1000 ms"),
            figure(f"resident memory at ready, {sales} sales", rss_big, "MB", "", None,
                   "≤ 80 MB"),
            figure(f"resident memory after {hour} sales + prints (an hour"
                   f"{' ÷ 12' if quick else ''})", rss, "MB", "", None, "≤ 80 MB")]
