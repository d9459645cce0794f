"""The sync worker: ships the journal to the billing pipeline, exactly once in effect.

One worker per daemon (single flight). It sleeps until a trigger — the timer
(``interval_s``), "sync now" from a page or the CLI, a route appearing, or the
end of a backoff — then drains: read a batch after the acknowledged cursor,
post it, and move the cursor only to the sequence the receiver says it holds.
Up to ``window`` batches are on the wire at once (the outbox thread prepares
the next while they travel); their answers are applied in order, and after a
failure or a rewind the later ones are dropped and sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from daemon.errors import StallboxError
from daemon.journal.store import Journal, utc_now
from sync import cursor, protocol
from sync.backoff import Backoff, parse_retry_after
from sync.outbox import Outbox, PreparedBatch

_LOG = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
USER_AGENT = "stallbox-sync/2"


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Where and how often to sync; the timeouts are here so tests can shrink them."""

    url: str
    stall_id: str
    interval_s: float = 60.0
    request_timeout_s: float = REQUEST_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    # Batches on the wire at once: the receiver parses the next while it
    # stores one; acknowledgements are applied in order.
    window: int = 2


@dataclass(slots=True)
class SyncStatus:
    """What the sync page, /healthz and `stallbox sync` show."""

    state: str = "starting"  # idle, syncing, backoff, parked, stopped
    last_success: str = ""
    last_error: str = ""
    next_attempt: str = ""
    rounds: int = 0
    round_events: int = 0
    round_started: float = 0.0
    bytes_remaining: int = 0


class SyncWorker:
    """The one task that moves journal events to the receiver."""

    def __init__(self, journal: Journal, settings: SyncSettings,
                 sign: Callable[[bytes], bytes], *,
                 outbox: Outbox | None = None) -> None:
        self.settings = settings
        self.status = SyncStatus()
        self._journal = journal
        self._outbox = outbox or Outbox(journal.path, settings.stall_id, sign)
        self._backoff = Backoff(settings.backoff_base_s, settings.backoff_cap_s)
        base = settings.url.rstrip("/")
        self._url = base + protocol.batch_path(settings.stall_id)
        self._head_url = base + protocol.head_path(settings.stall_id)
        self._saved = cursor.Cursor()
        self._saved_at = time.monotonic()
        self.acked_seq = 0
        self._delay: float | None = 0.0
        self._kick = asyncio.Event()
        self._round_done: asyncio.Future[dict[str, Any]] | None = None
        self._inflight: deque[tuple[PreparedBatch, asyncio.Task[protocol.Outcome]]] = \
            deque()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the cursor and start the worker task."""
        await self._journal.transact(cursor.ensure_table)
        self._saved = await self._outbox.load_cursor()
        self.acked_seq = self._saved.acked_seq
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._task = asyncio.create_task(self._run(), name="sync-worker")
        _LOG.info("sync to %s started at acked seq %d", self.settings.url,
                  self.acked_seq)

    async def stop(self) -> None:
        """Cancel the worker, journal the last acknowledgement, close connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_inflight()
        await self._persist(caught_up=False, stopping=True)
        if self._session is not None:
            await self._session.close()
        await self._outbox.close()
        self.status.state = "stopped"

    def sync_now(self) -> asyncio.Future[dict[str, Any]]:
        """Start a round now, or join the one running; resolve with the status."""
        if self._round_done is None:
            self._round_done = asyncio.get_running_loop().create_future()
            self._kick.set()
        return self._round_done

    def retry(self) -> asyncio.Future[dict[str, Any]]:
        """Unpark after a person fixed the cause and sync now."""
        if self.status.state == "parked":
            _LOG.info("sync retried by a person after: %s", self.status.last_error)
            self.status.state = "idle"
        self._backoff.reset()
        return self.sync_now()

    def network_changed(self) -> None:
        """A route appeared or changed: cut a running backoff short."""
        if self.status.state == "backoff":
            _LOG.info("network changed; retrying sync now")
            self._backoff.reset()
            self._kick.set()

    def state_dict(self) -> dict[str, Any]:
        """Return the sync status; cheap, no database access."""
        st = self.status
        backlog = max(0, self._journal.head_seq - self.acked_seq)
        rate = self._rate()
        return {"state": st.state, "acked_seq": self.acked_seq, "backlog": backlog,
                "bytes_remaining": st.bytes_remaining if backlog else 0,
                "rate_eps": round(rate, 1),
                "eta_s": round(backlog / rate, 1) if rate > 0 else None,
                "last_success": st.last_success, "last_error": st.last_error,
                "next_attempt": st.next_attempt, "rounds": st.rounds}

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.status.round_started
        if self.status.state != "syncing" or elapsed <= 0:
            return 0.0
        return self.status.round_events / elapsed

    # -- the loop ---------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wait()
            await self._round()

    async def _wait(self) -> None:
        timeout = None if self.status.state == "parked" else self._delay
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._kick.wait()
        self._kick.clear()

    async def _round(self) -> None:
        done = self._round_done or asyncio.get_running_loop().create_future()
        self._round_done = done
        try:
            await self._drain()
        except StallboxError as err:
            self._park(0, str(err))
        finally:
            self._round_done = None
            await self._drop_inflight()
            self.status.rounds += 1
            if not done.done():
                done.set_result(self.state_dict())

    async def _drain(self) -> None:
        st = self.status
        st.state, st.next_attempt, st.round_events = "syncing", "", 0
        st.round_started = time.monotonic()
        st.bytes_remaining = await self._outbox.bytes_after(self.acked_seq)
        await self._seal_tail()
        while True:
            await self._fill_window()
            if not self._inflight:
                if await self._persist(caught_up=True):
                    await self._seal_tail()
                    continue  # ship our own sync.acked event too, then rest
                if await self._push_head():
                    self._caught_up()
                    return
                if self.status.state != "syncing":
                    return
                continue  # the receiver holds less than we thought: resend
            batch, sending = self._inflight.popleft()
            if not self._apply(await sending, batch):
                return
            if self.acked_seq != batch.last_seq:  # a rewind: the rest is moot
                await self._drop_inflight()
            await self._persist(caught_up=False)

    async def _fill_window(self) -> None:
        """Prepare and post batches until `window` of them are on the wire."""
        while len(self._inflight) < self.settings.window:
            after = self._inflight[-1][0].last_seq if self._inflight \
                else self.acked_seq
            batch = await self._outbox.prepare(after)
            if batch is None:
                return
            task = asyncio.create_task(self._send(batch), name=f"sync-{batch.key}")
            self._inflight.append((batch, task))

    async def _drop_inflight(self) -> None:
        """Forget the batches still on the wire; resending them is idempotent."""
        pending, self._inflight = self._inflight, deque()
        for _batch, task in pending:
            task.cancel()
        for _batch, task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- one batch --------------------------------------------------------

    async def _seal_tail(self) -> None:
        """Ask the writer to seal an unsealed tail so this round can ship it."""
        try:
            await self._journal.seal()
        except StallboxError as err:
            _LOG.debug("could not seal the tail before syncing: %s", err)

    async def _push_head(self) -> bool:
        """Report the chain head; return True when the receiver holds all of it."""
        raw, signature = await self._outbox.prepare_head()
        headers = {"Content-Type": protocol.HEAD_CONTENT_TYPE,
                   protocol.SIGNATURE_HEADER: signature}
        outcome = await self._post(self._head_url, raw, headers)
        if isinstance(outcome, protocol.Acked):
            if outcome.seq >= self.acked_seq:
                return True
            _LOG.warning("receiver holds seq %d only; resending from there",
                         outcome.seq)
            self.acked_seq = outcome.seq
            return False
        if isinstance(outcome, protocol.Retry):
            self._schedule_retry(outcome)
        elif isinstance(outcome, protocol.Park):
            self._park(outcome.status, outcome.message)
        else:
            self._park(409, f"unexpected answer to the chain head: {outcome}")
        return False

    async def _send(self, batch: PreparedBatch) -> protocol.Outcome:
        headers = {"Content-Type": protocol.CONTENT_TYPE,
                   "Content-Encoding": protocol.CONTENT_ENCODING,
                   protocol.SIGNATURE_HEADER: batch.signature,
                   protocol.IDEMPOTENCY_HEADER: batch.key}
        _LOG.debug("posting batch %s (%d bytes)", batch.key, len(batch.payload))
        return await self._post(self._url, batch.payload, headers)

    async def _post(self, url: str, payload: bytes,
                    headers: dict[str, str]) -> protocol.Outcome:
        assert self._session is not None
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                async with self._session.post(url, data=payload,
                                              headers=headers) as resp:
                    body = await resp.read()
                    after = parse_retry_after(resp.headers.get("Retry-After"))
                    return protocol.classify(resp.status, body, after)
        except TimeoutError:
            return protocol.Retry("receiver did not answer in time")
        except (aiohttp.ClientError, OSError) as err:
            return protocol.Retry(f"network: {type(err).__name__}: {err}"[:200])

    def _apply(self, outcome: protocol.Outcome, batch: PreparedBatch) -> bool:
        """Act on the receiver's answer; return True to go on draining."""
        head = self._journal.head_seq
        if isinstance(outcome, protocol.Acked) and outcome.seq <= head:
            self._acked(outcome.seq, batch)
            return True
        if isinstance(outcome, protocol.Rewind) and outcome.expected_seq <= head + 1:
            _LOG.warning("receiver expects seq %d; resending from there",
                         outcome.expected_seq)
            self.acked_seq = outcome.expected_seq - 1
            return True
        if isinstance(outcome, protocol.Retry):
            self._schedule_retry(outcome)
            return False
        if isinstance(outcome, protocol.Park):
            self._park(outcome.status, outcome.message)
            return False
        self._park(409, f"receiver is ahead of this journal ({outcome}); is the "
                   "stall id shared with another box?")
        return False

    def _acked(self, seq: int, batch: PreparedBatch) -> None:
        st = self.status
        if seq >= batch.last_seq:
            st.round_events += batch.last_seq - batch.first_seq + 1
            st.bytes_remaining = max(0, st.bytes_remaining - batch.raw_bytes)
        if self._backoff.failures:
            _LOG.info("sync reaches the receiver again")
        self._backoff.reset()
        self.acked_seq = seq
        st.last_success = utc_now()

    def _schedule_retry(self, outcome: protocol.Retry) -> None:
        first = self._backoff.failures == 0
        delay = self._backoff.next_delay(outcome.retry_after_s)
        level = logging.WARNING if first else logging.DEBUG
        _LOG.log(level, "sync failed (%s); retrying in %.1f s", outcome.reason, delay)
        self._delay = delay
        when = datetime.now(UTC) + timedelta(seconds=delay)
        self.status.next_attempt = when.isoformat(timespec="seconds")
        self.status.state, self.status.last_error = "backoff", outcome.reason

    def _park(self, status: int, message: str) -> None:
        _LOG.error("sync parked until a person retries: %s", message)
        self.status.state, self.status.next_attempt = "parked", ""
        self.status.last_error = f"{status}: {message}" if status else message
        self._delay = None

    def _caught_up(self) -> None:
        st = self.status
        if st.round_events:
            _LOG.info("sync caught up at seq %d (%d events)", self.acked_seq,
                      st.round_events)
        st.state, st.bytes_remaining, st.last_error = "idle", 0, ""
        st.last_success = utc_now()
        self._delay = self.settings.interval_s
        when = datetime.now(UTC) + timedelta(seconds=self.settings.interval_s)
        st.next_attempt = when.isoformat(timespec="seconds")

    async def _persist(self, *, caught_up: bool, stopping: bool = False) -> bool:
        """Journal the acknowledgement when the cursor policy says it is worth it."""
        since = time.monotonic() - self._saved_at
        acked = self.acked_seq
        if not cursor.should_persist(self._saved, acked, caught_up=caught_up,
                                     since_last_s=since, stopping=stopping):
            return False
        try:
            self._saved = await self._journal.transact(
                lambda tx: cursor.persist(tx, acked), carry_deferred=False)
        except StallboxError as err:
            _LOG.warning("could not journal the sync cursor: %s", err)
            return False
        self._saved_at = time.monotonic()
        return True
