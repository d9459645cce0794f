"""The journal's single writer: a thread owning the one writable connection.

Requests from the event loop are whole transaction functions. The writer takes
every function waiting in its queue, runs each under its own SAVEPOINT inside
one ``BEGIN IMMEDIATE`` transaction, commits once (one WAL fsync with
``synchronous=FULL``) and only then resolves the callers' futures: a caller that
got its result knows its event is on disk, and many tablets share one fsync.

aiosqlite would hop to its thread once per statement; a sale is several
statements, so the writer runs the whole function in the thread in one hop.
Readers use the same pattern: read-only connections in a small thread pool
(see ``readers.py``).

A lone sale skips even that hop. Waking the idle writer and then the idle
event loop costs two cross-core wake-ups, 0.1-0.2 ms together in this VM, more
than a tenth of a one-tablet sale. So a transaction that may (``transact(...,
may_run_inline=True)``: a sale, computation and SQL only, no file I/O) and
that finds nothing queued, after letting the loop run everything ready once
(the other tablets' requests of the same moment), runs as a batch of one on
the event loop's thread, under the lock the writer holds for every batch, with
any deferred functions (SQL only too). The loop stands still for that commit,
so it does so only while the disk has been quick: at most INLINE_SLOW_ALLOWED
of the last INLINE_WINDOW commits took INLINE_COMMIT_MAX_S or longer. On a slow
or erratic disk (an SD card's fsync takes milliseconds) every commit goes
through the writer as before. Nor does it run a commit that would reach
SQLite's automatic checkpoint (a checkpoint runs inside that COMMIT): the
WAL's frame count, read from the wal-index header in ``-shm``, must be short of
it. Concurrent sales still meet in the queue and share one commit; a trim that
falls due is left to the writer. Every batch's wake-ups, inline or not, go
through one queue per event loop in commit order, so after-commit callbacks
run in the order their transactions committed.

Signing. With a signer attached, the writer *seals* the chain head: a row in
``seals`` holding (seq, epoch, hash, Ed25519 signature of the head) written in
the same transaction as the batch it ends. Because each event's hash covers
every earlier event, one seal authenticates the whole prefix, so signing every
event would buy nothing but cost (Ed25519 signs in ~50-70 µs and verifies in
~150 µs here, a SHA-256 of an event takes ~1 µs). A batch is sealed when
SEAL_INTERVAL_S passed or SEAL_MAX_EVENTS were appended since the last seal,
and always when a transaction asks (epoch rotation, closures, shutdown, sync);
a timer in the runtime seals an idle tail. The security argument:
within the live epoch the private key sits on the box, so a thief could re-seal
anything in it whether seals were frequent or not; what forward security needs
is that a closed epoch is sealed by its own key before that key is erased, and
rotation guarantees it (the certificate of the next key is signed by the old key
over the head). Verification then costs one signature check per sealed batch:
at most one per SEAL_INTERVAL_S of selling, or per SEAL_MAX_EVENTS events,
instead of one per event. The price: a local verify cannot tell whether events
of the last few seconds before a crash were cut off (the receiver can, from the
head pushed at every sync).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.errors import FatalError, RetryLaterError, StallboxError
from daemon.journal.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from daemon.ops.clock import corrected_utc

if TYPE_CHECKING:
    from daemon.keys.signer import JournalSigner

_LOG = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 256
SEAL_INTERVAL_S = 5.0
SEAL_MAX_EVENTS = 1000
EPOCH_CERT_KIND = "key.epoch"
REQUIRED_PRAGMAS = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
# SD-card wear (#7, docs/appliance.md): a commit appends every page it touched
# to the WAL, so small pages write less per sale; only a new file can get them.
NEW_JOURNAL_PAGE_SIZE = 512
WAL_AUTOCHECKPOINT_BYTES = 8 * 1024 * 1024  # WAL between passive checkpoints
# A restarted WAL is cut back to this, above the autocheckpoint: a WAL that
# ran its normal course keeps its blocks, and the commits after a checkpoint
# overwrite them instead of growing the file. An fdatasync that grows a file
# also commits ext4 metadata for the new size and blocks: on this box a
# sale-sized commit takes 0.3 ms over old blocks and 0.45-0.5 ms growing the
# file, and writes 3-4 kB more to the disk (`python scripts/bench.py wal`).
JOURNAL_SIZE_LIMIT_BYTES = WAL_AUTOCHECKPOINT_BYTES + 2 * 1024 * 1024
WAL_BOUND_BYTES = 16 * 1024 * 1024  # above this, checkpoint as soon as readers allow
# A checkpoint writes every page changed since the last one once, so rarer
# checkpoints write the hot pages (index leaves, page 1) fewer times: at a sale
# every 20 s, every 30 minutes instead of every 5 saves ~8 MB a day (#7).
WAL_TRIM_INTERVAL_S = 1800.0  # and at least this often while trading
WRITER_IDLE_S = 120.0  # an idle writer wakes this often to trim the WAL
# A lone sale commits on the event loop's thread only while the disk is quick:
# at most INLINE_SLOW_ALLOWED of the last INLINE_WINDOW commits took
# INLINE_COMMIT_MAX_S or more. The loop stands still for the commit, so on a
# disk whose fsync takes milliseconds (an SD card) every commit stays on the
# writer. A fresh journal counts as slow until INLINE_WINDOW commits were quick.
INLINE_COMMIT_MAX_S = 0.001
INLINE_WINDOW = 64
INLINE_SLOW_ALLOWED = 1
# Frames short of the automatic checkpoint an inline commit leaves room for:
# a sale writes about 22, deferred print.done rows a few each.
INLINE_WAL_HEADROOM_FRAMES = 512
_WAKE = object()  # queued by defer(): the writer recomputes when to wake
_TRIM = object()  # queued after an inline commit: the writer trims if due


@dataclass(frozen=True, slots=True)
class Event:
    """One appended journal event as stored."""

    seq: int
    ts: str
    kind: str
    data: dict[str, Any]
    hash: bytes


class Tx:
    """What a transaction function may do: read, write read models, append events."""

    def __init__(self, journal: Journal, conn: sqlite3.Connection) -> None:
        self._journal = journal
        self.conn = conn
        self._after: list[Callable[[], None]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Append one event to the chain; it commits with the whole batch."""
        journal = self._journal
        seq = journal.head_seq + 1
        ts = utc_now()
        body = canonical_bytes({"data": data, "kind": kind, "seq": seq, "ts": ts})
        digest = chain_hash(journal.head_hash, body)
        self.conn.execute(
            "INSERT INTO events (seq, ts, kind, body, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (seq, ts, kind, body, journal.head_hash, digest),
        )
        journal.head_seq, journal.head_hash = seq, digest
        return Event(seq, ts, kind, data, digest)

    @property
    def next_seq(self) -> int:
        """Return the seq the next append in this transaction will get."""
        return self._journal.head_seq + 1

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run callback on the event loop once the batch is durable."""
        self._after.append(callback)

    @property
    def signer(self) -> JournalSigner | None:
        """Return the journal's signer (None for an unsigned journal)."""
        return self._journal.signer

    def force_seal(self) -> None:
        """Seal the chain head when this batch commits."""
        self._journal.seal_wanted = True

    def rotate_epoch(self, reason: str) -> Event:
        """Start the next epoch: journal its certificate; the old key goes at commit."""
        journal = self._journal
        if journal.signer is None:
            raise FatalError("the journal has no signer to rotate")
        epoch = self.execute("SELECT COALESCE(MAX(epoch), 0) + 1 FROM epochs")
        cert = journal.signer.begin_rotation(journal.head_seq, journal.head_hash,
                                             reason, epoch.fetchone()[0])
        public = journal.signer.active.public_bytes  # type: ignore[union-attr]
        try:
            event = self.append(EPOCH_CERT_KIND, cert)
            self.execute("INSERT INTO epochs (epoch, public_key, seq, cert)"
                         " VALUES (?, ?, ?, ?)",
                         (cert["epoch"], public, event.seq, canonical_bytes(cert)))
        except BaseException:
            journal.signer.abort()
            raise
        self.force_seal()
        return event


@dataclass(slots=True)
class _Request:
    fn: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    carry: bool = True  # deferred functions may commit with it


@dataclass(slots=True)
class _Deferred:
    fn: Callable[[Tx], Any]
    deadline: float  # time.monotonic() by which it commits on its own
    loop: asyncio.AbstractEventLoop


def utc_now() -> str:
    """Return the current UTC time as an ISO 8601 string with microseconds."""
    # corrected_utc: the kernel clock plus a manager's correction, if any (#7)
    return corrected_utc().isoformat(timespec="microseconds").replace("+00:00", "Z")


def open_connection(path: Path) -> sqlite3.Connection:
    """Open the writable connection and check the pragmas the journal relies on."""
    new = not path.exists() or path.stat().st_size == 0
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if new:  # must precede the first write; WAL mode fixes it afterwards
        conn.execute(f"PRAGMA page_size = {NEW_JOURNAL_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = WAL_AUTOCHECKPOINT_BYTES // page_size
    conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    for name, wanted in REQUIRED_PRAGMAS.items():
        got = conn.execute(f"PRAGMA {name}").fetchone()[0]
        if str(got).lower() != str(wanted):
            conn.close()
            raise FatalError(f"journal pragma {name} is {got!r}, need {wanted!r}")
    schema = resources.files("daemon.journal").joinpath("schema.sql").read_text()
    # One transaction: in autocommit each CREATE would be its own commit, and
    # with synchronous=FULL a new journal paid ~50 fsyncs (130 ms of start-up
    # on this box, #7); an existing journal's IF NOT EXISTS writes nothing.
    try:
        conn.executescript(f"BEGIN;\n{schema}\nCOMMIT;")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class Journal:
    """The append-only event journal and its read models, written by one thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._wal_path = f"{path}-wal"  # stat'ed after every batch: no Path each time
        self._conn = conn
        row = conn.execute(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self.head_seq: int = row[0] if row else 0
        self.head_hash: bytes = row[1] if row else GENESIS_HASH
        seal = conn.execute("SELECT MAX(seq) FROM seals").fetchone()
        self.last_seal_seq: int = seal[0] or 0
        self._last_seal_monotonic = time.monotonic()
        self.signer: JournalSigner | None = None
        self.seal_wanted = False
        self._queue: queue.SimpleQueue[_Request | object | None] = queue.SimpleQueue()
        self._deferred: list[_Deferred] = []
        self._deferred_lock = threading.Lock()
        self._last_commit_monotonic = time.monotonic()
        # Held by whoever uses the connection: the writer for each batch, the
        # event loop for an inline commit (see the module docstring).
        self._conn_lock = threading.Lock()
        self._slow = [True] * INLINE_WINDOW  # the last commits: slow ones True
        self._slow_at = 0
        self._slow_count = INLINE_WINDOW
        self._arrivals = 0  # transact() calls so far: tells a lone one
        # Wake-ups in commit order, per event loop (see _deliver).
        self._wakes: dict[asyncio.AbstractEventLoop,
                          deque[tuple[Callable[[Any], None], Any]]] = {}
        self._checkpoint_frames: int = conn.execute(
            "PRAGMA wal_autocheckpoint").fetchone()[0]
        self._shm_fd: int | None = None
        self._thread = threading.Thread(target=self._run, name="journal-writer",
                                        daemon=True)
        self._closed = False
        self._last_trim_monotonic = time.monotonic()
        self._thread.start()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (creating if needed) the journal file; blocking, call at start."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, open_connection(path))

    async def transact(self, fn: Callable[[Tx], T], *,
                       carry_deferred: bool = True, may_run_inline: bool = False) -> T:
        """Run fn in one durable transaction; return its result once fsync'd.

        carry_deferred=False: deferred functions (see defer) do not ride with
        a batch made only of such transactions (the sync cursor's, whose
        commit must not add events that then call for another acknowledgement).
        may_run_inline=True: fn only computes and uses the connection (no file
        or network I/O, nothing that waits for the event loop), so alone it may
        run on the event loop's thread (see the module docstring).
        """
        if self._closed:
            raise RetryLaterError("the journal is closed (daemon shutting down)")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        request = _Request(fn, future, loop, carry_deferred)
        self._arrivals += 1
        if may_run_inline and self._slow_count <= INLINE_SLOW_ALLOWED \
                and self._queue.empty():
            seen = self._arrivals
            await asyncio.sleep(0)  # the loop runs what is ready: other sales
            if self._closed:  # close() came in that turn: its stop is queued
                raise RetryLaterError("the journal is closed (daemon shutting down)")
            if self._arrivals == seen and self._commit_inline(request):
                return await future  # settled: returns without a loop turn
        self._queue.put(request)
        return await future

    def _commit_inline(self, request: _Request) -> bool:
        """Commit a lone request on the calling thread; False: the writer
        holds the connection or has work queued, so the request goes to it."""
        if self._closed or not self._conn_lock.acquire(blocking=False):
            return False
        try:
            if not self._queue.empty() or not self._wal_has_room():
                return False
            loops = self._commit_batch([request])
            size = self.wal_bytes()
        finally:
            self._conn_lock.release()
        self._deliver(request.loop)
        self._wake_loops(loops - {request.loop})
        if self._trim_due(size, idle=False):
            self._queue.put(_TRIM)  # a checkpoint is slow: the writer does it
        return True

    def _wal_has_room(self) -> bool:
        """Say whether a small commit stays short of the automatic checkpoint.

        The WAL's frame count (mxFrame) is the u32 at byte 16 of the wal-index
        header at the start of ``-shm``, kept twice (bytes 0-47 and 48-95; the
        two agree outside a write, and only this connection writes). Anything
        unreadable answers False: the commit then goes to the writer.
        """
        if self._checkpoint_frames <= 0:
            return True  # no automatic checkpoint
        try:
            if self._shm_fd is None:
                self._shm_fd = os.open(f"{self.path}-shm", os.O_RDONLY)
            head = os.pread(self._shm_fd, 96, 0)
        except OSError:
            return False
        if len(head) < 96 or head[:48] != head[48:]:
            return False
        frames = int.from_bytes(head[16:20], sys.byteorder)
        return frames + INLINE_WAL_HEADROOM_FRAMES < self._checkpoint_frames

    def _hold_wake(self, loop: asyncio.AbstractEventLoop,
                   callback: Callable[[Any], None], arg: Any) -> None:
        """Queue a wake-up behind those of earlier commits (called under the
        connection lock, so in commit order)."""
        self._wakes.setdefault(loop, deque()).append((callback, arg))

    def _wake_loops(self, loops: set[asyncio.AbstractEventLoop]) -> None:
        for loop in loops:
            loop.call_soon_threadsafe(self._deliver, loop)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the loop's queued wake-ups, oldest commit first (on that loop).

        An inline commit delivers at once, taking along those of a writer
        batch that committed before it and whose call_soon_threadsafe has not
        run yet; that call then finds nothing left.
        """
        pending = self._wakes.get(loop)
        while pending:
            callback, arg = pending.popleft()
            callback(arg)

    def defer(self, fn: Callable[[Tx], Any], max_delay_s: float) -> None:
        """Run fn in the next transaction that commits anyway, at the latest
        after max_delay_s in one of its own (sealed with it).

        For records whose loss in a power cut costs only a repeat, never a
        wrong record: the print job's ``print.done`` (lost: the receipt is
        reprinted marked REPRINT) and the sync cursor (lost: events already
        held are sent again). They then cost no fsync and no commit of their
        own, which on an SD card is most of what they cost (#7,
        docs/appliance.md). Deferred functions run before the batch's own, in
        the order they were deferred; there is no result: a failure is logged.
        ``close()`` commits what is still deferred.
        """
        if self._closed:
            raise RetryLaterError("the journal is closed (daemon shutting down)")
        entry = _Deferred(fn, time.monotonic() + max_delay_s,
                          asyncio.get_running_loop())
        with self._deferred_lock:
            self._deferred.append(entry)
        self._queue.put(_WAKE)

    def deferred_count(self) -> int:
        """Return how many deferred functions wait for a commit."""
        with self._deferred_lock:
            return len(self._deferred)

    async def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Append a single event with no read-model change."""
        return await self.transact(lambda tx: tx.append(kind, data))

    async def seal(self) -> None:
        """Seal the chain head now if events are unsealed (no-op without a signer)."""
        if self.signer is not None and self.head_seq > self.last_seal_seq:
            await self.transact(lambda tx: tx.force_seal())

    def seal_age_s(self) -> float:
        """Return the seconds since the last seal (0 when nothing is unsealed)."""
        if self.head_seq <= self.last_seal_seq:
            return 0.0
        return time.monotonic() - self._last_seal_monotonic

    async def rotate(self, reason: str) -> Event:
        """Start a new epoch key, certified by the live one (or the device key)."""
        return await self.transact(lambda tx: tx.rotate_epoch(reason))

    async def close(self) -> None:
        """Seal the head, finish queued work, stop the writer, close the connection."""
        if self._closed:
            return
        if self.deferred_count():
            await self.transact(lambda tx: None)  # commits the deferred ones
        await self.seal()
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._conn.close()
        if self._shm_fd is not None:
            os.close(self._shm_fd)

    def wal_bytes(self) -> int:
        """Return the WAL file's size (0 when it is absent)."""
        try:
            return os.stat(self._wal_path).st_size
        except OSError:
            return 0

    def _trim_due(self, size: int, *, idle: bool) -> bool:
        """Return whether the WAL (size bytes of file) should be checkpointed now."""
        due = time.monotonic() - self._last_trim_monotonic >= WAL_TRIM_INTERVAL_S
        return size > 0 and (due or idle or size > WAL_BOUND_BYTES)

    def _trim_wal(self, size: int) -> None:
        """Checkpoint the WAL from the writer thread so the next commit starts
        it again from the top, over the blocks it has.

        RESTART, not TRUNCATE: the file keeps its blocks; SQLite cuts a WAL
        that outgrew JOURNAL_SIZE_LIMIT_BYTES back to it when it restarts.
        Only this connection ever checkpoints: SQLite before 3.51.3 can corrupt
        the WAL when two connections checkpoint at once. A reader still inside
        old frames makes RESTART busy; busy_timeout 0 returns at once rather
        than holding up sales, and the next chance tries again.
        """
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            busy = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
        except sqlite3.Error as err:
            busy = 1
            _LOG.debug("WAL checkpoint failed: %s", err)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not busy:
            self._last_trim_monotonic = time.monotonic()
        _LOG.debug("WAL of %d bytes %s", size,
                   "kept: readers" if busy else "checkpointed")

    def _wait_s(self) -> float:
        """Return how long the writer may sleep: until the first deferred
        deadline, at most until the WAL trim of an idle writer."""
        now = time.monotonic()
        wait = self._last_commit_monotonic + WRITER_IDLE_S - now
        with self._deferred_lock:
            if self._deferred:
                wait = min(wait, min(d.deadline for d in self._deferred) - now)
        return max(0.0, wait)

    def _deferred_due(self) -> bool:
        now = time.monotonic()
        with self._deferred_lock:
            return any(d.deadline <= now for d in self._deferred)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._wait_s())
            except queue.Empty:
                self._when_idle()
                continue
            if first is None:
                self._refuse_queued()
                return
            if first is _WAKE:
                continue
            if first is _TRIM:
                if self._queue.empty():  # else after the batch that is waiting
                    self._trim_if_due(idle=False)
                continue
            batch: list[_Request] = [first]  # type: ignore[list-item]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                if item is not _WAKE and item is not _TRIM:
                    batch.append(item)  # type: ignore[arg-type]
            self._writer_commit(batch, may_trim=self._queue.empty())

    def _refuse_queued(self) -> None:
        """Answer what was queued behind the stop (another loop's, or one that
        raced close()) with RetryLater instead of leaving it waiting."""
        refused = RetryLaterError("the journal is closed (daemon shutting down)")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request):
                try:
                    item.loop.call_soon_threadsafe(_settle, item.future, False,
                                                   refused, [])
                except RuntimeError:  # its loop is closed: nobody is waiting
                    pass

    def _when_idle(self) -> None:
        """Commit deferred functions that are due; trim the WAL of an idle writer."""
        if self._deferred_due():
            self.seal_wanted = True  # no idle-tail seal commit after it
            self._writer_commit([], may_trim=True)
        elif time.monotonic() - self._last_commit_monotonic >= WRITER_IDLE_S:
            self._trim_if_due(idle=True)
            self._last_commit_monotonic = time.monotonic()

    def _trim_if_due(self, *, idle: bool) -> None:
        with self._conn_lock:
            size = self.wal_bytes()
            if self._trim_due(size, idle=idle):
                self._trim_wal(size)

    def _writer_commit(self, batch: list[_Request], *, may_trim: bool) -> None:
        """Commit a batch on the writer thread, wake its callers, trim if due.

        The callers are woken after the writer's last quick system call (the
        WAL's size) and after it let go of the connection: a woken event loop
        wants the GIL, and may want the connection at once for a lone sale.
        A checkpoint, the slow part, comes after the wake-up.
        """
        with self._conn_lock:
            loops = self._commit_batch(batch)
            size = self.wal_bytes()
            trim = may_trim and self._trim_due(size, idle=False)
        self._wake_loops(loops)
        if trim:
            with self._conn_lock:
                self._trim_wal(size)

    def _take_deferred(self) -> list[_Deferred]:
        with self._deferred_lock:
            deferred, self._deferred = self._deferred, []
        return deferred

    def _commit_batch(self, batch: list[_Request]) -> set[asyncio.AbstractEventLoop]:
        """Run the batch and the deferred functions in one transaction and
        commit it; queue the wake-ups that hand the outcomes to their loops
        (see _deliver) and return those loops."""
        outcomes: list[tuple[bool, Any, list[Callable[[], None]]]] = []
        carry = not batch or any(request.carry for request in batch)
        deferred = self._take_deferred() if carry else []
        deferred_after: list[tuple[asyncio.AbstractEventLoop,
                                   list[Callable[[], None]]]] = []
        head = (self.head_seq, self.head_hash)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for entry in deferred:
                ok, _value, after = self._run_fn(entry.fn)
                if ok and after:
                    deferred_after.append((entry.loop, after))
            for request in batch:
                outcomes.append(self._run_fn(request.fn))
            sealed = self._seal_if_due()
            started = time.perf_counter()
            self._conn.execute("COMMIT")
            self._count_commit(time.perf_counter() - started)
        except sqlite3.Error as err:
            _LOG.exception("journal commit failed; batch of %d refused", len(batch))
            self._rollback()
            self.head_seq, self.head_hash = head
            self.seal_wanted = False
            if self.signer is not None:
                self.signer.abort()
            with self._deferred_lock:  # tried again with the next commit
                self._deferred[:0] = deferred
            failure = RetryLaterError(f"journal write failed: {err}")
            outcomes = [(False, failure, []) for _ in batch]
            deferred_after = []
        else:
            self._committed(sealed)
        self._last_commit_monotonic = time.monotonic()
        for loop, after in deferred_after:
            self._hold_wake(loop, _run_callbacks, after)
        # One wake-up per loop for the whole batch: each call_soon_threadsafe
        # writes to the loop's self-pipe, a system call per sale otherwise.
        settled: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for request, (ok, value, after) in zip(batch, outcomes, strict=True):
            settled.setdefault(request.loop, []).append(
                (request.future, ok, value, after))
        for loop, items in settled.items():
            self._hold_wake(loop, _settle_all, items)
        return {loop for loop, _ in deferred_after} | settled.keys()

    def _count_commit(self, seconds: float) -> None:
        """Keep how many of the last INLINE_WINDOW commits were slow."""
        slow = seconds >= INLINE_COMMIT_MAX_S
        self._slow_count += slow - self._slow[self._slow_at]
        self._slow[self._slow_at] = slow
        self._slow_at = (self._slow_at + 1) % INLINE_WINDOW

    def _seal_if_due(self) -> bool:
        """Write a seal row for the head when one is wanted or due."""
        if self.signer is None or self.head_seq <= self.last_seal_seq:
            return False
        due = (self.seal_wanted
               or self.head_seq - self.last_seal_seq >= SEAL_MAX_EVENTS
               or time.monotonic() - self._last_seal_monotonic >= SEAL_INTERVAL_S)
        if not due:
            return False
        epoch, signature = self.signer.seal(self.head_seq, self.head_hash)
        self._conn.execute(
            "INSERT INTO seals (seq, epoch, hash, signature) VALUES (?, ?, ?, ?)",
            (self.head_seq, epoch, self.head_hash, signature))
        return True

    def _committed(self, sealed: bool) -> None:
        self.seal_wanted = False
        if sealed:
            self.last_seal_seq = self.head_seq
            self._last_seal_monotonic = time.monotonic()
        if self.signer is not None:
            self.signer.commit()

    def _run_fn(self, fn: Callable[[Tx], Any]
                ) -> tuple[bool, Any, list[Callable[[], None]]]:
        tx = Tx(self, self._conn)
        head = (self.head_seq, self.head_hash)
        pending = self.signer.pending if self.signer else None
        self._conn.execute("SAVEPOINT op")
        try:
            result = fn(tx)
        except Exception as err:  # noqa: BLE001 - handed to the caller, who re-raises
            if not isinstance(err, StallboxError | sqlite3.IntegrityError):
                _LOG.warning("transaction function failed: %r", err)
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            self.head_seq, self.head_hash = head
            if self.signer is not None and self.signer.pending is not pending:
                self.signer.abort()
            return (False, err, [])
        self._conn.execute("RELEASE op")
        return (True, result, tx._after)

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            _LOG.debug("rollback after failed commit also failed", exc_info=True)


def _run_callbacks(after: list[Callable[[], None]]) -> None:
    """Run after-commit callbacks; one that fails strands neither its caller
    (the transaction is durable) nor the rest of the batch."""
    for callback in after:
        try:
            callback()
        except Exception:
            _LOG.exception("after-commit callback failed")


_Settled = tuple[asyncio.Future[Any], bool, Any, list[Callable[[], None]]]


def _settle_all(items: list[_Settled]) -> None:
    """Resolve a batch's futures in order, on their loop."""
    for future, ok, value, after in items:
        _settle(future, ok, value, after)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any,
            after: list[Callable[[], None]]) -> None:
    if ok:
        _run_callbacks(after)
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
