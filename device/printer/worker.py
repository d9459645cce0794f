"""The print worker: an asyncio task that works persisted print jobs in order.

It knows the job store only through the small JobStore protocol below, so the
journal can keep its tables to itself. Rules (issue #2, item 9):

- status is asked between jobs; a printer that says offline or out of paper
  is asked again with backoff, and the job waits; an odd answer is advice;
- a job is marked started before its first byte goes out and done after its
  last; each job is sent once;
- a job cut off mid-write (port vanished, write stalled) is never resent as
  is: the store queues one reprint of it, marked REPRINT. An automatic reprint
  that is cut off again is not requeued; a person reprints it explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon.sales.receipt import Receipt
from device.printer.escpos import encode_receipt, load_in_thread
from device.printer.link import PrinterLink, PrinterState, PrintInterrupted, StateCode

_LOGGER = logging.getLogger(__name__)

# Waits between status checks while the printer cannot print.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
# How long stop() waits for a job already on the wire.
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One job: the receipt (or ready bytes), and whether it is a reprint.

    `automatic` marks a reprint the worker asked for after an interruption.
    A Receipt is encoded at print time, with REPRINT set for reprints; bytes
    are sent as they are, so the store must render reprint bytes itself.
    """

    id: int | str
    receipt: Receipt | bytes
    reprint: bool = False
    automatic: bool = False


class JobStore(Protocol):
    """What the worker needs from wherever jobs are persisted."""

    async def next_pending(self) -> PrintJob | None:
        """Return the oldest job not yet started, or None."""

    async def unfinished(self) -> Sequence[PrintJob]:
        """Return jobs started but never done (the daemon died mid-print)."""

    async def mark_started(self, job_id: int | str) -> None:
        """Record, durably, that the job's first byte is about to go out."""

    async def mark_done(self, job_id: int | str) -> None:
        """Record that all of the job's bytes were written."""

    async def mark_interrupted(
        self, job_id: int | str, reason: str, *, requeue_as_reprint: bool
    ) -> None:
        """Record the job as cut off; if asked, queue one reprint of it."""


class PrintWorker:
    """Work print jobs from a JobStore through a PrinterLink."""

    def __init__(self, store: JobStore, link: PrinterLink) -> None:
        self._store = store
        self._link = link
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.printed = 0

    @property
    def printer_state(self) -> PrinterState:
        """Return the printer state for the status page and /healthz."""
        return self._link.state

    def start(self) -> None:
        """Start the worker task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="print-worker")

    def notify(self) -> None:
        """Wake the worker: a new job was queued."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Finish the job on the wire, then stop; close the link."""
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._link.close()

    async def _run(self) -> None:
        await self._recover()
        while not self._stopping.is_set():
            try:
                await self._work_one()
            except Exception:
                # A bug or a store failure must not end printing for the day.
                _LOGGER.exception("print worker failed; retrying")
                await self._sleep(BACKOFF_MAX_S)

    async def _work_one(self) -> None:
        self._wakeup.clear()
        job = await self._store.next_pending()
        if job is None:
            await self._sleep(None)
        elif await self._wait_until_printable():
            await asyncio.shield(self._print(job))

    async def _recover(self) -> None:
        for job in await self._store.unfinished():
            _LOGGER.warning("print job %s was cut off by a restart", job.id)
            await self._interrupted(job, "daemon stopped while printing")

    async def _wait_until_printable(self) -> bool:
        delay = BACKOFF_FIRST_S
        while not self._stopping.is_set():
            state = await self._link.query_status()
            if state.printable:
                return True
            _LOGGER.debug("job waits: %s", state.reason)
            await self._sleep(delay)
            delay = min(BACKOFF_MAX_S, delay * 2)
        return False

    async def _sleep(self, delay_s: float | None) -> None:
        """Sleep until woken by notify() or stop(), or until delay_s passed."""
        waiter = self._stopping if delay_s is not None else self._wakeup
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), delay_s)

    async def _print(self, job: PrintJob) -> None:
        await load_in_thread()  # python-escpos, imported at the first job
        data = _job_bytes(job, self._link)
        if not await self._link.ensure_open():
            return
        await self._store.mark_started(job.id)
        try:
            await self._link.send(data)
        except PrintInterrupted as err:
            _LOGGER.warning("print job %s cut off after %d bytes", job.id, err.written)
            await self._interrupted(job, self._link.state.reason)
            return
        except Exception:
            # Started means bytes may be out: never leave it to be resent as is.
            _LOGGER.exception("print job %s failed while sending", job.id)
            await self._interrupted(job, "printing failed unexpectedly")
            return
        if await self._lost_after_send():
            _LOGGER.warning("print job %s: the printer vanished right after it",
                            job.id)
            await self._interrupted(job, self._link.state.reason)
            return
        await self._store.mark_done(job.id)
        self.printed += 1
        _LOGGER.debug("print job %s done, %d bytes", job.id, len(data))

    async def _lost_after_send(self) -> bool:
        """Ask status once after a job: has the port vanished under it?

        A printer answers DLE EOT in order, after the bytes sent before it, so
        an answer (or a printer that never answers) says nothing was lost; a
        port gone right after the last write means the job may not have
        arrived, and it is reprinted marked REPRINT rather than called printed.
        """
        state = await self._link.query_status()
        return state.code == StateCode.ABSENT

    async def _interrupted(self, job: PrintJob, reason: str) -> None:
        requeue = not job.automatic
        await self._store.mark_interrupted(job.id, reason, requeue_as_reprint=requeue)


def _job_bytes(job: PrintJob, link: PrinterLink) -> bytes:
    if isinstance(job.receipt, bytes):
        return job.receipt
    receipt = job.receipt
    if job.reprint and not receipt.reprint:
        receipt = dataclasses.replace(receipt, reprint=True)
    return encode_receipt(receipt, link.settings)
