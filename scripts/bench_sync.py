"""Sync benchmark: backlog drain rate next to the receiver's raw ingest, client memory.

Each side gets its own process: the receiver (`stallbox receiver`, rate limit
off) and the draining client (a real SyncWorker on a real journal), so each
gets a core as on a real stall and a real ingest host. The floor is the same
receiver ingesting the same signed batches posted back to back by a plain loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FILL_CHUNK = 1000  # the journal writer seals at least every 1000 events
READY_TIMEOUT_S = 30.0


def _sale(n: int) -> dict[str, Any]:
    qty = 1 + n % 3
    return {"id": f"b{n:09d}", "client_ref": f"bench-{n:09d}", "tablet": "bench",
            "currency": "EUR", "pricing": "gross",
            "lines": [{"sku": "TEE", "name": "Tee", "qty": qty, "unit_minor": 320,
                       "amount_minor": 320 * qty, "tax_code": "B"}],
            "taxes": [{"code": "B", "label": "7 %", "rate_bp": 700,
                       "net_minor": 299 * qty, "tax_minor": 21 * qty,
                       "gross_minor": 320 * qty}],
            "total_minor": 320 * qty, "change_minor": 0,
            "payments": [{"method": "cash", "amount_minor": 320 * qty,
                          "tendered_minor": 320 * qty}],
            "header": ["Bench", "", ""], "footer": ["Danke"],
            "local_time": "01.06.2025 10:00"}


def make_stall(state: Path, events: int) -> str:
    """Create a state dir with a device key and a signed journal; return the key.

    Seals every FILL_CHUNK events, as the daemon's writer does under load.
    """
    from daemon.journal.store import Journal
    from daemon.keys.device import DeviceIdentity
    from daemon.trust.lifecycle import open_signer

    state.mkdir(parents=True, exist_ok=True)

    def append(tx: Any, first: int, count: int) -> None:
        for n in range(first, first + count):
            tx.append("sale.completed", _sale(n))
        tx.force_seal()

    async def fill() -> None:
        journal = Journal.open(state / "journal.sqlite3")
        await open_signer(journal, state, "bench", None)
        for first in range(0, events, FILL_CHUNK):
            count = min(FILL_CHUNK, events - first)
            await journal.transact(lambda tx, f=first, c=count: append(tx, f, c))
        await journal.close()

    asyncio.run(fill())
    return DeviceIdentity.load_or_create(state).public_b64()


class ReceiverProcess:
    """`stallbox receiver` on a free loopback port, rate limit off."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "receiver", "--host", "127.0.0.1",
             "--port", "0", "--data", str(data), "--rate", "0"],
            cwd=REPO, stderr=subprocess.PIPE, text=True)
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        for line in self.proc.stderr:
            if "receiver serving on" in line:
                return line.split("serving on ")[1].split()[0].rstrip("/")
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("receiver did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _drain(state: str, url: str, stall_id: str, out: Any) -> None:
    """In a child process: drain the journal with a real worker; report rate and RSS."""
    from daemon.journal.store import Journal
    from daemon.journal.verify import open_readonly
    from daemon.keys.device import DeviceIdentity
    from daemon.trust.lifecycle import last_certified, open_signer
    from sync.client import SyncSettings, SyncWorker

    async def run() -> dict[str, float]:
        path = Path(state) / "journal.sqlite3"
        conn = open_readonly(path)
        certified = last_certified(conn)
        conn.close()
        journal = Journal.open(path)
        await open_signer(journal, Path(state), "bench", certified)  # as the daemon
        key = DeviceIdentity.load_or_create(Path(state))
        worker = SyncWorker(journal, SyncSettings(url, stall_id, interval_s=3600),
                            key.sign)
        start = time.perf_counter()
        await worker.start()
        while worker.acked_seq < journal.head_seq:
            status = await worker.sync_now()
            if status["state"] == "parked":
                raise RuntimeError(f"sync parked: {status['last_error']}")
        elapsed = time.perf_counter() - start
        await worker.stop()
        await journal.close()
        return {"elapsed_s": elapsed, "events": journal.head_seq}

    result = asyncio.run(run())
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(result)


def drain_in_child(state: Path, url: str, stall_id: str) -> dict[str, float]:
    """Run _drain in a fresh spawned process and return its measurements."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_drain, args=(str(state), url, stall_id, out))
    proc.start()
    result = out.get(timeout=900)
    proc.join()
    return result


async def _raw_ingest(state: Path, url: str, stall_id: str) -> dict[str, float]:
    """Prepare every batch first, then post them back to back; time the posts."""
    import aiohttp

    from daemon.keys.device import DeviceIdentity
    from sync import protocol
    from sync.outbox import Outbox

    key = DeviceIdentity.load_or_create(state)
    outbox = Outbox(state / "journal.sqlite3", stall_id, key.sign)
    batches, after = [], 0
    while (batch := await outbox.prepare(after)) is not None:
        batches.append(batch)
        after = batch.last_seq
    await outbox.close()
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for b in batches:
            headers = {"Content-Type": protocol.CONTENT_TYPE,
                       "Content-Encoding": protocol.CONTENT_ENCODING,
                       protocol.SIGNATURE_HEADER: b.signature,
                       protocol.IDEMPOTENCY_HEADER: b.key}
            async with session.post(url + protocol.batch_path(stall_id),
                                    data=b.payload, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"raw ingest refused: {resp.status}")
        return {"elapsed_s": time.perf_counter() - start, "events": after}


def run(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Measure and return the sync figures (figure is bench.Figure)."""
    from sync.receiver.admin import enroll

    full, small = (30_000, 10_000) if quick else (100_000, 10_000)
    base = root / "sync"
    stalls = {"full": (base / "full", full), "small": (base / "small", small)}
    keys = {name: make_stall(path, n) for name, (path, n) in stalls.items()}
    for name, key in keys.items():
        enroll(base / "drain-rx", f"bench-{name}", key)
    enroll(base / "raw-rx", "bench-full", keys["full"])
    raw_rx = ReceiverProcess(base / "raw-rx")
    try:
        raw = asyncio.run(_raw_ingest(stalls["full"][0], raw_rx.url, "bench-full"))
    finally:
        raw_rx.stop()
    drain_rx = ReceiverProcess(base / "drain-rx")
    try:
        big = drain_in_child(stalls["full"][0], drain_rx.url, "bench-full")
        little = drain_in_child(stalls["small"][0], drain_rx.url, "bench-small")
    finally:
        drain_rx.stop()
    raw_rate = raw["events"] / raw["elapsed_s"]
    return [
        figure(f"sync drain, {full} events backlog", big["events"] / big["elapsed_s"],
               "events/s", "raw receiver ingest, same batches, plain loop",
               raw_rate, "≥ 10 000 events/s and ≥ 0.5× raw"),
        figure(f"sync client peak RSS, {full} events", big["peak_rss_mb"], "MB",
               f"same at {small} events", little["peak_rss_mb"], "flat (≈ 1×)"),
    ]
