"""Print jobs in the journal, worked by the printer device's worker.

A job is a row in ``print_jobs`` plus events for each state change: queued with
its sale, then ``print.started`` before the first byte goes out and
``print.done`` after the last. A job found ``printing`` at start, or cut off
mid-write, may be half on paper: it is never resent silently but re-queued as
an explicit reprint marked REPRINT, so every receipt prints at most once
unless reprinted.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.journal.store import Tx
from daemon.runtime import Stallbox
from daemon.sales.queries import receipt_record
from daemon.sales.service import receipt_from_record


def _next_pending(conn: sqlite3.Connection) -> tuple[int, str, bool] | None:
    row = conn.execute("SELECT id, sale_id, reprint FROM print_jobs"
                       " WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
    return (row[0], row[1], bool(row[2])) if row else None


def _set_status(tx: Tx, job_id: int, status: str, kind: str, reason: str = "") -> None:
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


def _interrupt(tx: Tx, job_id: int, reason: str) -> int:
    """Mark a job cut off and queue its explicit reprint; return the new job id."""
    _set_status(tx, job_id, "interrupted", "print.interrupted", reason)
    sale_id = tx.execute("SELECT sale_id FROM print_jobs WHERE id = ?",
                         (job_id,)).fetchone()[0]
    event = tx.append("print.reprint_requested",
                      {"sale_id": sale_id, "after_interrupted_job": job_id})
    cursor = tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
        " VALUES (?, 1, 'queued', ?, ?)", (sale_id, event.seq, event.seq))
    return int(cursor.lastrowid or 0)


def _recover_unfinished(tx: Tx) -> list[int]:
    rows = tx.execute("SELECT id FROM print_jobs WHERE status = 'printing'")
    return [_interrupt(tx, job_id, "daemon stopped while printing")
            for (job_id,) in rows.fetchall()]


class JournalJobStore:
    """The print worker's view of the journal's print jobs."""

    def __init__(self, box: Stallbox) -> None:
        self._box = box

    async def next_pending(self) -> tuple[int, Any, bool] | None:
        """Return (job id, receipt document, reprint) of the oldest queued job."""
        def read(conn: sqlite3.Connection) -> tuple[int, Any, bool] | None:
            job = _next_pending(conn)
            if job is None:
                return None
            job_id, sale_id, reprint = job
            record = receipt_record(conn, sale_id)
            return job_id, receipt_from_record(record, reprint=reprint), reprint

        return await self._box.reader.run(read)

    async def mark_started(self, job_id: int) -> None:
        """Journal that the job's first byte is about to go out."""
        await self._box.journal.transact(
            lambda tx: _set_status(tx, job_id, "printing", "print.started"))

    async def mark_done(self, job_id: int) -> None:
        """Journal that the job's last byte went out."""
        await self._box.journal.transact(
            lambda tx: _set_status(tx, job_id, "printed", "print.done"))

    async def mark_interrupted(self, job_id: int, reason: str) -> None:
        """Journal that the job was cut off and queue its reprint."""
        await self._box.journal.transact(lambda tx: _interrupt(tx, job_id, reason))

    async def recover(self) -> list[int]:
        """Re-queue, as reprints, jobs a crash left half printed."""
        return await self._box.journal.transact(_recover_unfinished)


async def start_printing(box: Stallbox) -> Any:
    """Start the print worker when a printer is configured; return it or None."""
    if box.config.printer is None:
        return None
    raise NotImplementedError  # wired to device.printer.worker below
