"""Print jobs in the journal, worked by the printer device's worker.

A job is a row in ``print_jobs`` plus events for each state change: queued with
its sale, then ``print.started`` before the first byte goes out and
``print.done`` after the last. A job found ``printing`` at start, or cut off
mid-write, may be half on paper: it is never resent silently but re-queued once
as a reprint marked REPRINT, so every receipt prints at most once unless
reprinted.

SD-card wear (#7): ``print.started`` must be on disk before the first byte
goes out, so it is its own fsync'd commit, and it seals the chain head (one
signature per receipt, at the printer's pace) so that no idle-tail seal commit
follows every receipt. ``print.done`` rides with the next commit the journal
makes anyway (the next sale, the next job's ``print.started``), at the latest
PRINT_DONE_DELAY_S later: a power cut in that window leaves the job
``printing``, which the next start reprints once marked REPRINT, as for a job
cut off mid-write. It is never journaled before the printer took the bytes.
Until it is journaled the daemon reports the job printed from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

from daemon.errors import RetryLaterError
from daemon.journal.store import Tx
from daemon.runtime import Stallbox
from daemon.sales import giftcards
from daemon.sales.queries import receipt_record
from daemon.sales.refunds import load_refund, refund_slip
from daemon.sales.service import receipt_from_record
from device.printer.link import PrinterLink, StateCode
from device.printer.worker import PrintJob, PrintWorker

_LOG = logging.getLogger(__name__)
_JOB_COLUMNS = "id, sale_id, reprint, automatic"
# Status poll while idle (#7): a printer plugged in after start is opened within
# this time; a missing one is asked less and less often, up to the maximum.
PRESENCE_POLL_S = 5.0
PRESENCE_POLL_MAX_S = 30.0
PRINT_DONE_DELAY_S = 30.0  # print.done waits at most this long for a commit


def _job(conn: sqlite3.Connection, row: tuple[int, str, int, int]) -> PrintJob:
    job_id, sale_id, reprint, automatic = row
    refund = conn.execute("SELECT refund_id FROM print_job_refunds WHERE job_id = ?",
                          (job_id,)).fetchone()
    if refund is not None:  # a refund slip rather than the sale's receipt
        receipt = refund_slip(load_refund(conn, refund[0]), reprint=bool(reprint))
    else:  # gift card codes in full on the original only (see _prints_codes)
        record = receipt_record(conn, sale_id,
                                gift_codes=_prints_codes(reprint, automatic))
        receipt = receipt_from_record(record, reprint=bool(reprint))
    return PrintJob(job_id, receipt, reprint=bool(reprint), automatic=bool(automatic))


def _prints_codes(reprint: int, automatic: int) -> bool:
    """Return whether a sale's receipt job prints its gift card codes in full.

    The original receipt does, and so does the automatic reprint (marked
    REPRINT) of one a crash or a cut-off stopped before its print.done: its
    codes may not have reached paper. An explicit reprint never does. Once
    such a job is done the plain codes are deleted (``_forget_codes``), so a
    later job has only the masked form to print anyway.
    """
    return not reprint or bool(automatic)


def _forget_codes(tx: Tx, job_id: int, sale_id: str) -> None:
    """After a sale's original receipt printed, delete its plain gift card codes."""
    row = tx.execute("SELECT reprint, automatic, EXISTS (SELECT 1 FROM"
                     " print_job_refunds WHERE job_id = ?) FROM print_jobs"
                     " WHERE id = ?", (job_id, job_id)).fetchone()
    if row is not None and not row[2] and _prints_codes(row[0], row[1]):
        giftcards.forget_codes(tx, sale_id)


def _next_pending(conn: sqlite3.Connection) -> PrintJob | None:
    row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM print_jobs WHERE status ="
                       " 'queued' ORDER BY id LIMIT 1").fetchone()
    return _job(conn, row) if row else None


def _unfinished(conn: sqlite3.Connection) -> list[PrintJob]:
    rows = conn.execute(f"SELECT {_JOB_COLUMNS} FROM print_jobs WHERE status ="
                        " 'printing' ORDER BY id").fetchall()
    return [_job(conn, row) for row in rows]


def _set_status(tx: Tx, job_id: int, status: str, kind: str, reason: str = "") -> str:
    row = tx.execute("SELECT sale_id FROM print_jobs WHERE id = ?",
                     (job_id,)).fetchone()
    if row is None:
        raise ValueError(f"no print job {job_id}")
    data: dict[str, Any] = {"job_id": job_id, "sale_id": row[0]}
    if reason:
        data["reason"] = reason
    event = tx.append(kind, data)
    tx.execute("UPDATE print_jobs SET status = ?, reason = ?, updated_seq = ?"
               " WHERE id = ?", (status, reason, event.seq, job_id))
    return str(row[0])


def _interrupt(tx: Tx, job_id: int, reason: str, requeue: bool) -> None:
    """Mark a job cut off and, if asked, queue its one automatic reprint."""
    sale_id = _set_status(tx, job_id, "interrupted", "print.interrupted", reason)
    if not requeue:
        return
    event = tx.append("print.reprint_requested",
                      {"sale_id": sale_id, "after_interrupted_job": job_id})
    tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, automatic, status, seq,"
        " updated_seq) VALUES (?, 1, 1, 'queued', ?, ?)",
        (sale_id, event.seq, event.seq))


_SLIP_IDS = itertools.count(1)


def _is_slip(job_id: int | str) -> bool:
    return isinstance(job_id, str) and job_id.startswith("slip-")


class JournalJobStore:
    """The print worker's view of the journal's print jobs."""

    def __init__(self, box: Stallbox) -> None:
        self._box = box
        # Jobs printed whose print.done is deferred (not yet journaled).
        self.printed_unjournaled: set[int] = set()
        # Slips (e.g. the setup slip) are not business records: the worker
        # prints them between receipts, but they live in memory, never journaled.
        self._slips: deque[PrintJob] = deque()

    def queue_slip(self, data: bytes) -> None:
        """Queue ready ESC/POS bytes; they print before receipts still waiting."""
        self._slips.append(PrintJob(f"slip-{next(_SLIP_IDS)}", data))

    async def next_pending(self) -> PrintJob | None:
        """Return the next slip, else the oldest queued job with its receipt."""
        if self._slips:
            return self._slips[0]
        return await self._box.reader.run(_next_pending)

    async def unfinished(self) -> Sequence[PrintJob]:
        """Return jobs a crash left in the middle of printing."""
        return await self._box.reader.run(_unfinished)

    async def mark_started(self, job_id: int | str) -> None:
        """Journal that the job's first byte is about to go out."""
        if _is_slip(job_id):
            self._slips.popleft()
            return

        def started(tx: Tx) -> None:
            _set_status(tx, int(job_id), "printing", "print.started")
            tx.force_seal()

        await self._box.journal.transact(started)

    async def mark_done(self, job_id: int | str) -> None:
        """Journal, with the next commit, that the job's last byte went out."""
        if _is_slip(job_id):
            return
        job = int(job_id)
        pending = self.printed_unjournaled

        def done(tx: Tx) -> None:
            _forget_codes(tx, job, _set_status(tx, job, "printed", "print.done"))
            tx.after_commit(lambda: pending.discard(job))

        pending.add(job)
        try:
            self._box.journal.defer(done, PRINT_DONE_DELAY_S)
        except RetryLaterError:  # shutting down: the next start reprints it
            pending.discard(job)
            _LOG.warning("print job %s printed but not journaled (journal closed)",
                         job)

    async def mark_interrupted(self, job_id: int | str, reason: str, *,
                               requeue_as_reprint: bool) -> None:
        """Journal that the job was cut off and maybe queue its reprint."""
        if _is_slip(job_id):
            return
        await self._box.journal.transact(
            lambda tx: _interrupt(tx, int(job_id), reason, requeue_as_reprint))


class PrinterService:
    """What the rest of the daemon sees of the printer: wake it, read its state."""

    def __init__(self, worker: PrintWorker, link: PrinterLink | None = None,
                 store: JournalJobStore | None = None) -> None:
        self._worker = worker
        self._link = link
        self._store = store
        self._watch: asyncio.Task[None] | None = None

    def print_slip(self, data: bytes) -> None:
        """Print ready ESC/POS bytes next; a slip is not journaled."""
        if self._store is None:
            raise RuntimeError("this printer service has no job store")
        self._store.queue_slip(data)
        self._worker.notify()

    def start(self) -> None:
        """Start the worker and the idle status poll."""
        self._worker.start()
        if self._link is not None:
            self._watch = asyncio.create_task(self._poll(), name="printer-poll")

    async def _poll(self) -> None:
        """Ask the printer's status now and then; nothing is written for it."""
        assert self._link is not None
        delay, was_printable = PRESENCE_POLL_S, True
        while True:
            await asyncio.sleep(delay)
            state = await self._link.query_status()
            absent = state.code == StateCode.ABSENT
            delay = min(PRESENCE_POLL_MAX_S, delay * 2) if absent else PRESENCE_POLL_S
            if state.printable and not was_printable:
                self._worker.notify()  # a job that waited for it may go now
            was_printable = state.printable

    def wake(self) -> None:
        """Tell the worker a job was queued."""
        self._worker.notify()

    def overlay(self, jobs: list[dict[str, Any]]) -> None:
        """Show jobs printed whose print.done is not journaled yet as printed."""
        pending = self._store.printed_unjournaled if self._store else set()
        for job in jobs:
            if job["status"] == "printing" and job["id"] in pending:
                job["status"] = "printed"

    def unjournaled_printed(self) -> int:
        """Return how many printed jobs still wait for their print.done commit."""
        return len(self._store.printed_unjournaled) if self._store else 0

    def state_dict(self) -> dict[str, Any]:
        """Return the printer state for /healthz and the pages."""
        state = self._worker.printer_state
        return {"state": str(state.code), "reason": state.reason,
                "action": state.action}

    async def stop(self) -> None:
        """Finish the job on the wire and close the port."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._worker.stop()


async def start_printing(box: Stallbox) -> PrinterService | None:
    """Start the print worker when a printer is configured."""
    if box.config.printer is None:
        return None
    link = PrinterLink(box.config.printer)
    store = JournalJobStore(box)
    service = PrinterService(PrintWorker(store, link), link, store)
    box.printer = service
    service.start()
    return service
