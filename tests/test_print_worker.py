"""PrintWorker: jobs print exactly once, wait for the printer, reprint marked."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest

from daemon.sales.receipt import REPRINT_BANNER, Receipt, ReceiptLine, render_text
from device.printer import worker as worker_module
from device.printer.link import PrinterLink, StateCode
from device.printer.settings import PrinterSettings
from device.printer.worker import JobStore, PrintJob, PrintWorker
from device.sim.printer import SimulatedPrinter
from tests.receipt_samples import market_receipt

JobId = int | str


class MemoryStore:
    """A JobStore in memory, recording every call."""

    def __init__(self) -> None:
        self.jobs: dict[JobId, PrintJob] = {}
        self.states: dict[JobId, str] = {}
        self.calls: list[tuple[str, JobId]] = []
        self.on_started: Callable[[JobId], None] | None = None
        self.changed = asyncio.Event()

    def add(self, job: PrintJob) -> None:
        self.jobs[job.id] = job
        self.states[job.id] = "pending"

    async def next_pending(self) -> PrintJob | None:
        pending = [i for i, state in self.states.items() if state == "pending"]
        return self.jobs[pending[0]] if pending else None

    async def unfinished(self) -> Sequence[PrintJob]:
        return [self.jobs[i] for i, s in self.states.items() if s == "started"]

    async def mark_started(self, job_id: JobId) -> None:
        self._record("started", job_id)
        if self.on_started is not None:
            self.on_started(job_id)

    async def mark_done(self, job_id: JobId) -> None:
        self._record("done", job_id)

    async def mark_interrupted(
        self, job_id: JobId, reason: str, *, requeue_as_reprint: bool
    ) -> None:
        self._record("interrupted", job_id)
        if requeue_as_reprint:
            job = self.jobs[job_id]
            self.add(PrintJob(f"{job_id}-r", job.receipt, reprint=True, automatic=True))

    def _record(self, state: str, job_id: JobId) -> None:
        self.states[job_id] = state
        self.calls.append((state, job_id))
        self.changed.set()

    async def wait_for(self, state: str, job_id: JobId, timeout_s: float = 5) -> None:
        async with asyncio.timeout(timeout_s):
            while self.states.get(job_id) != state:
                self.changed.clear()
                await self.changed.wait()


def _settings(port: str, **changes: object) -> PrinterSettings:
    fast = PrinterSettings(port=port, write_timeout_s=0.3, status_timeout_s=0.1)
    return dataclasses.replace(fast, **changes)  # type: ignore[arg-type]


def _long_receipt() -> Receipt:
    """A receipt larger than the pty's buffer, so a stall blocks its write."""
    line = ReceiptLine(1, "Apfel", 100, 100, "B")
    return dataclasses.replace(market_receipt(), lines=(line,) * 700)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(worker_module, "BACKOFF_MAX_S", 0.2)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(link_path=tmp_path / "printer") as printer:
        yield printer


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def worker(
    sim: SimulatedPrinter, store: MemoryStore
) -> AsyncIterator[PrintWorker]:
    typed: JobStore = store
    print_worker = PrintWorker(typed, PrinterLink(_settings(sim.port_path)))
    yield print_worker
    await print_worker.stop()


async def _receipts(sim: SimulatedPrinter, count: int) -> list[str]:
    return await asyncio.to_thread(sim.wait_for_receipts, count)


async def _still(sim: SimulatedPrinter, count: int, settle_s: float = 0.4) -> None:
    await asyncio.sleep(settle_s)
    assert len(sim.receipts) == count


async def test_job_prints_exactly_once(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    store.add(PrintJob(1, market_receipt()))
    worker.start()
    worker.notify()

    expected = render_text(market_receipt(), 42, codepage="cp858")
    assert await _receipts(sim, 1) == [expected]
    await store.wait_for("done", 1)
    await _still(sim, 1)
    assert worker.printer_state.code == StateCode.READY


@pytest.mark.parametrize(
    ("switch", "code"),
    [("set_paper_out", StateCode.PAPER_OUT), ("set_online", StateCode.OFFLINE),
     ("set_cover_open", StateCode.COVER_OPEN)],
)
async def test_job_waits_for_the_printer_then_prints_once(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker,
    switch: str, code: StateCode,
) -> None:
    trouble = switch != "set_online"
    getattr(sim, switch)(trouble)
    worker.start()
    store.add(PrintJob(1, market_receipt()))
    worker.notify()

    await _still(sim, 0)
    assert store.states[1] == "pending" and worker.printer_state.code == code
    getattr(sim, switch)(not trouble)
    await store.wait_for("done", 1)
    assert len(await _receipts(sim, 1)) == 1
    await _still(sim, 1)


async def test_absent_printer_job_prints_when_plugged_in(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    sim.unplug()
    store.add(PrintJob(1, market_receipt()))
    worker.start()

    await _still(sim, 0)
    assert worker.printer_state.code == StateCode.ABSENT
    assert "cable" in worker.printer_state.action
    sim.replug()
    await store.wait_for("done", 1)
    assert len(await _receipts(sim, 1)) == 1


async def test_wrong_baud_rate_prints_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    with SimulatedPrinter(baudrate=19200, link_path=tmp_path / "p") as sim:
        link = PrinterLink(_settings(sim.port_path, baudrate=9600))
        worker = PrintWorker(store, link)
        store.add(PrintJob(1, market_receipt()))
        worker.start()
        await asyncio.sleep(0.5)
        await worker.stop()
        assert sim.bytes_received <= 12 * 4  # status requests only
    assert store.states[1] == "pending"
    reason = "link misconfigured (check baud rate / parity)"
    assert worker.printer_state.reason == reason


async def test_job_stalled_mid_write_is_reprinted_marked(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    store.add(PrintJob(1, _long_receipt()))
    store.on_started = lambda job_id: sim.set_stalled(True)
    worker.start()

    await store.wait_for("interrupted", 1)
    await asyncio.sleep(0.3)
    assert store.states["1-r"] == "pending"
    assert worker.printer_state.code == StateCode.STALLED
    store.on_started = None
    sim.set_stalled(False)
    await store.wait_for("done", "1-r")
    printed = await _receipts(sim, 1)

    reprint = dataclasses.replace(_long_receipt(), reprint=True)
    assert printed[0].endswith(render_text(reprint, 42, codepage="cp858"))
    await _still(sim, 1)
    assert [c for c in store.calls if c[1] == 1] == [("started", 1), ("interrupted", 1)]


async def test_job_cut_off_by_unplug_is_reprinted_marked(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    store.add(PrintJob(7, market_receipt()))
    store.on_started = lambda job_id: sim.unplug() if job_id == 7 else None
    worker.start()

    await store.wait_for("interrupted", 7)
    sim.replug()
    await store.wait_for("done", "7-r")
    printed = await _receipts(sim, 1)
    assert printed[0].count(REPRINT_BANNER) == 2
    await _still(sim, 1)


async def test_automatic_reprint_is_not_requeued_again(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    store.add(PrintJob("r", market_receipt(), reprint=True, automatic=True))
    store.on_started = lambda job_id: sim.unplug()
    worker.start()

    await store.wait_for("interrupted", "r")
    await asyncio.sleep(0.2)
    assert set(store.states) == {"r"}


async def test_job_cut_off_by_a_restart_is_reprinted(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    store.add(PrintJob(3, market_receipt()))
    store.states[3] = "started"
    worker.start()

    await store.wait_for("done", "3-r")
    printed = await _receipts(sim, 1)
    assert REPRINT_BANNER in printed[0]
    assert store.states[3] == "interrupted"


async def test_stop_finishes_the_job_on_the_wire(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    sim.paced = True  # about a second at 9600 baud
    stopping: list[asyncio.Task[None]] = []
    store.on_started = lambda job_id: stopping.append(
        asyncio.get_running_loop().create_task(worker.stop())
    )
    store.add(PrintJob(1, market_receipt()))
    worker.start()

    await store.wait_for("started", 1)
    await stopping[0]
    assert store.states[1] == "done"
    assert len(await _receipts(sim, 1)) == 1


async def test_new_job_is_picked_up_on_notify(
    sim: SimulatedPrinter, store: MemoryStore, worker: PrintWorker
) -> None:
    worker.start()
    await asyncio.sleep(0.1)
    for job_id in (1, 2, 3):
        store.add(PrintJob(job_id, market_receipt()))
        worker.notify()

    await store.wait_for("done", 3)
    assert len(await _receipts(sim, 3)) == 3
    done = [c for c in store.calls if c[0] == "done"]
    assert done == [("done", i) for i in (1, 2, 3)]


class _UnplugAfterSend(PrinterLink):
    """The real link; the cable is pulled the moment a job's last write returns."""

    def __init__(self, settings: PrinterSettings, sim: SimulatedPrinter) -> None:
        super().__init__(settings)
        self._sim = sim
        self.pulls = 0

    async def send(self, data: bytes) -> None:
        await super().send(data)
        if self.pulls == 0:
            self.pulls += 1
            self._sim.unplug()


async def test_job_lost_when_the_port_vanishes_right_after_is_reprinted(
    sim: SimulatedPrinter, store: MemoryStore
) -> None:
    link = _UnplugAfterSend(_settings(sim.port_path), sim)
    print_worker = PrintWorker(store, link)
    store.add(PrintJob(1, market_receipt()))
    print_worker.start()
    try:
        await store.wait_for("interrupted", 1)
        sim.replug()
        await store.wait_for("done", "1-r")
    finally:
        await print_worker.stop()
    printed = await _receipts(sim, 1)
    assert REPRINT_BANNER in printed[-1]
    assert ("done", 1) not in store.calls
