"""Shared pieces of the sync tests: signed journals of sales, a receiver on loopback."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.journal.store import Journal, Tx
from daemon.keys.device import DeviceIdentity
from daemon.trust.lifecycle import last_certified, open_signer
from sync.client import SyncSettings, SyncWorker
from sync.receiver.app import create_receiver_app
from sync.receiver.sqlite_store import SqliteStorage

STALL = "stall-t1"
JOURNAL_STALL = "stall-1"  # the [stall] id the certificates name; may differ
FILL_CHUNK = 100  # the daemon's writer seals every <= 1000 events; tests more often


def sale_data(n: int) -> dict[str, Any]:
    """Return a sale.completed body shaped like the daemon's (sales.service)."""
    qty = 1 + n % 3
    amount = 450 * qty
    net = round(amount * 100 / 107)
    return {
        "id": f"s{n:08d}", "client_ref": f"ref-{n:08d}", "tablet": "Till 1",
        "currency": "EUR", "pricing": "gross",
        "lines": [{"sku": "BROT", "name": "Bauernbrot", "qty": qty, "unit_minor": 450,
                   "amount_minor": amount, "tax_code": "B"}],
        "taxes": [{"code": "B", "label": "7 %", "rate_bp": 700, "net_minor": net,
                   "tax_minor": amount - net, "gross_minor": amount}],
        "total_minor": amount,
        "payments": [{"method": "cash", "amount_minor": amount,
                      "tendered_minor": amount}],
        "change_minor": 0, "header": ["Testhof", "", ""], "footer": ["Danke"],
        "local_time": "01.06.2025 10:00",
    }


async def fill(journal: Journal, count: int, start: int = 0,
               chunk: int = FILL_CHUNK) -> None:
    """Append count sale events in transactions of chunk, each sealed."""
    done = 0
    while done < count:
        size = min(chunk, count - done)
        first = start + done

        def append(tx: Tx, first: int = first, size: int = size) -> None:
            for n in range(first, first + size):
                tx.append("sale.completed", sale_data(n))
            tx.force_seal()

        await journal.transact(append)
        done += size


async def open_signed(path: Path, state_dir: Path,
                      stall_id: str = JOURNAL_STALL) -> Journal:
    """Open a journal signed as the daemon signs it (a new epoch per start)."""
    journal = await asyncio.to_thread(Journal.open, path)
    conn = sqlite3.connect(path)
    try:
        certified = last_certified(conn)
    finally:
        conn.close()
    await open_signer(journal, state_dir, stall_id, certified)
    return journal


def device_dir(tmp: Path) -> Path:
    """Return the state dir holding the device key the test journal signs with."""
    path = tmp / "device"
    path.mkdir(exist_ok=True)
    return path


class Receiver:
    """The reference receiver served on a free loopback port, restartable."""

    def __init__(self, data_dir: Path, port: int = 0, **options: Any) -> None:
        self.data_dir = data_dir
        self.options = {"rate_per_s": 0.0, **options}
        self.runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> SqliteStorage:
        assert self.runner is not None
        from sync.receiver.app import STORAGE

        return self.runner.app[STORAGE]  # type: ignore[return-value]

    async def start(self) -> Receiver:
        app = create_receiver_app(SqliteStorage.in_dir(self.data_dir), **self.options)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def enrol(self, identity: DeviceIdentity, stall: str = STALL) -> None:
        await self.storage.enroll(stall, identity.public_bytes)

    async def stored_seqs(self, stall: str = STALL) -> Sequence[int]:
        def read(conn: Any) -> list[int]:
            rows = conn.execute("SELECT seq FROM events WHERE stall_id = ?"
                                " ORDER BY seq", (stall,))
            return [row[0] for row in rows]

        return await self.storage._call(read)


@asynccontextmanager
async def running_receiver(data_dir: Path, key: DeviceIdentity | None = None
                           ) -> AsyncIterator[Receiver]:
    """Run a receiver on loopback for the block, with the device key enrolled."""
    rec = await Receiver(data_dir).start()
    try:
        if key is not None:
            await rec.enrol(key)
        yield rec
    finally:
        await rec.stop()


def stall_receiver() -> Any:
    """Return a ``receiver`` fixture: a receiver with the test stall's device
    key (from ``state_dir``) enrolled. In a test module:
    ``receiver = stall_receiver()``."""

    @pytest.fixture
    async def receiver(tmp_path: Path, state_dir: Path) -> AsyncIterator[Receiver]:
        key = DeviceIdentity.load_or_create(state_dir)
        async with running_receiver(tmp_path / "receiver", key) as rec:
            yield rec

    return receiver


def identity(tmp: Path) -> DeviceIdentity:
    """Make a device key in a fresh directory."""
    path = tmp / f"key-{secrets.token_hex(4)}"
    path.mkdir()
    return DeviceIdentity.load_or_create(path)


def worker(journal: Journal, url: str, key: DeviceIdentity,
           **settings: Any) -> SyncWorker:
    """Build a sync worker with short test timeouts."""
    options = {"interval_s": 3600.0, "request_timeout_s": 2.0,
               "backoff_base_s": 0.01, "backoff_cap_s": 0.05, **settings}
    return SyncWorker(journal, SyncSettings(url, STALL, **options), key.sign)
