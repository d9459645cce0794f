"""The journal as the outbox: read, check, encode, compress and sign one batch.

All of it runs in one thread of its own with its own read-only connection, a
batch at a time, so the event loop (and the till) never waits on it and memory
holds at most one or two batches whatever the backlog.

Batches end on a seal (format v2): the events read within the size bounds are
cut back to the last seal among them. Without one, the batch runs on to the
next seal up to HARD_MAX_BYTES; an unsealed tail is not shipped until the
journal's writer seals it (within SEAL_INTERVAL_S, or at once when the worker
asks at the start of a round).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from daemon.journal.canonical import chain_hash, parse_canonical
from daemon.journal.store import utc_now
from daemon.journal.verify import open_readonly
from sync import cursor, protocol
from sync.errors import JournalBroken

T = TypeVar("T")
MAX_BATCH_EVENTS = 2000
MAX_BATCH_BYTES = 2 * 1024 * 1024  # uncompressed; the receiver allows 4 MiB
# A batch must end on a seal; when none lies within the bounds it may grow to
# the next one, but never past what the receiver accepts.
HARD_MAX_BYTES = 3 * 1024 * 1024 + 512 * 1024
NTP_DIR = Path("/run/systemd/timesync")


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """One signed, compressed batch ready to post."""

    first_seq: int
    last_seq: int
    raw_bytes: int
    payload: bytes
    signature: str
    key: str


def clock_report(max_event_ts: str) -> dict[str, Any]:
    """Describe the device clock so the receiver can correct event times."""
    sent_at = utc_now()
    synced = (NTP_DIR / "synchronized").exists() if NTP_DIR.exists() else None
    # ISO 8601 UTC strings of one format compare in time order.
    return {"sent_at": sent_at, "max_event_ts": max_event_ts,
            "behind_journal": sent_at < max_event_ts, "ntp_synced": synced}


class Outbox:
    """Reads events after a seq and turns them into signed batches, off the loop."""

    def __init__(self, path: Path, stall_id: str, sign: Callable[[bytes], bytes], *,
                 max_events: int = MAX_BATCH_EVENTS,
                 max_bytes: int = MAX_BATCH_BYTES) -> None:
        self._path = path
        self._stall_id = stall_id
        self._sign = sign
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._conn: sqlite3.Connection | None = None
        # The latest event time read this session: a wall clock now behind it
        # jumped backwards (no RTC on a Pi after a power cut).
        self._max_ts = ""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sync-outbox")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._snapshot, fn)

    def _snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = open_readonly(self._path)
        self._conn.execute("BEGIN")
        try:
            return fn(self._conn)
        finally:
            self._conn.execute("COMMIT")

    async def prepare(self, after_seq: int) -> PreparedBatch | None:
        """Return the next batch after after_seq, or None when caught up."""
        return await self._run(lambda conn: self._prepare(conn, after_seq))

    async def load_cursor(self) -> cursor.Cursor:
        """Read the journaled acknowledgement cursor."""
        return await self._run(cursor.load)

    async def bytes_after(self, seq: int) -> int:
        """Return the stored size of every event after seq."""
        return await self._run(lambda conn: conn.execute(
            "SELECT coalesce(sum(length(body)), 0) FROM events WHERE seq > ?",
            (seq,)).fetchone()[0])

    async def close(self) -> None:
        """Stop the thread and close the connection."""
        await asyncio.to_thread(self._pool.shutdown, True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def head(self) -> protocol.Head:
        """Return the committed chain head (what a head push reports)."""
        return await self._run(read_head)

    async def prepare_head(self) -> tuple[bytes, str]:
        """Return a signed head push body and its signature header value."""
        def build(conn: sqlite3.Connection) -> tuple[bytes, str]:
            raw = protocol.encode_head(self._stall_id, read_head(conn),
                                       clock_report(self._max_ts))
            return raw, protocol.sign_batch(self._sign, raw, head=True)

        return await self._run(build)

    def _prepare(self, conn: sqlite3.Connection,
                 after_seq: int) -> PreparedBatch | None:
        rows, seals = self._read(conn, after_seq)
        if not rows:
            return None
        last_hash = check_chain(after_seq, rows)
        self._max_ts = max(self._max_ts, max(row[1] for row in rows))
        header = protocol.BatchHeader(
            stall_id=self._stall_id, first_seq=rows[0][0], last_seq=rows[-1][0],
            prev_hash=bytes(rows[0][3]), last_hash=last_hash,
            clock=clock_report(self._max_ts), head=read_head(conn), seals=seals,
            certs=carried_certs(conn, rows[0][0], seals))
        raw = protocol.encode_batch(header, [bytes(row[2]) for row in rows])
        return PreparedBatch(
            first_seq=header.first_seq, last_seq=header.last_seq, raw_bytes=len(raw),
            payload=protocol.compress(raw),
            signature=protocol.sign_batch(self._sign, raw),
            key=protocol.idempotency_key(self._stall_id, header.first_seq,
                                         header.last_seq))

    def _read(self, conn: sqlite3.Connection,
              after_seq: int) -> tuple[list[Any], list[protocol.SealRow]]:
        """Read events after after_seq up to the last seal within the bounds."""
        rows = self._read_rows(conn, after_seq, self.max_events, self.max_bytes)
        if not rows:
            return [], []
        seals = read_seals(conn, after_seq, rows[-1][0])
        if not seals:
            nxt = conn.execute("SELECT min(seq) FROM seals WHERE seq > ?",
                               (rows[-1][0],)).fetchone()[0]
            if nxt is None:
                return [], []  # an unsealed tail: the writer seals it soon
            rows = self._read_rows(conn, after_seq, nxt - after_seq, HARD_MAX_BYTES)
            if rows[-1][0] != nxt:
                raise JournalBroken(f"no seal within {HARD_MAX_BYTES} bytes after "
                                    f"seq {after_seq}; the batch cannot end on one")
            seals = read_seals(conn, after_seq, nxt)
        cut = seals[-1][0]
        return rows[:cut - after_seq], seals

    def _read_rows(self, conn: sqlite3.Connection, after_seq: int, limit: int,
                   max_bytes: int) -> list[Any]:
        rows, size = [], 0
        cursor_ = conn.execute(
            "SELECT seq, ts, body, prev_hash, hash FROM events WHERE seq > ?"
            " ORDER BY seq LIMIT ?", (after_seq, limit))
        for row in cursor_:
            rows.append(row)
            size += len(row[2]) + 1
            if size >= max_bytes:
                break
        return rows


def read_head(conn: sqlite3.Connection) -> protocol.Head:
    """Return the last committed event's seq and hash (genesis when empty)."""
    row = conn.execute(
        "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return protocol.Head(row[0], bytes(row[1])) if row else protocol.Head(0, bytes(32))


def read_seals(conn: sqlite3.Connection, after_seq: int,
               last_seq: int) -> list[protocol.SealRow]:
    """Return the seal rows of seqs after_seq+1..last_seq in seq order."""
    rows = conn.execute("SELECT seq, epoch, hash, signature FROM seals"
                        " WHERE seq > ? AND seq <= ? ORDER BY seq",
                        (after_seq, last_seq))
    return [(seq, epoch, bytes(digest), bytes(sig)) for seq, epoch, digest, sig in rows]


def carried_certs(conn: sqlite3.Connection, first_seq: int,
                  seals: list[protocol.SealRow]) -> list[dict[str, Any]]:
    """Return the certificates of the seals' epochs journaled before the batch."""
    epochs = sorted({seal[1] for seal in seals})
    if not epochs:
        return []
    marks = ",".join("?" * len(epochs))
    rows = conn.execute(f"SELECT cert FROM epochs WHERE seq < ? AND epoch IN ({marks})"
                        " ORDER BY epoch", (first_seq, *epochs))
    return [parse_canonical(bytes(row[0])) for row in rows]


def check_chain(after_seq: int, rows: list[Any]) -> bytes:
    """Check the rows link up from after_seq; return the last hash or raise."""
    prev = bytes(rows[0][3])
    for offset, (seq, _ts, body, prev_hash, digest) in enumerate(rows):
        if seq != after_seq + 1 + offset:
            raise JournalBroken(f"journal sequence gap before seq {seq}")
        if isinstance(body, str) or bytes(prev_hash) != prev \
                or chain_hash(prev, bytes(body)) != bytes(digest):
            raise JournalBroken(f"journal chain broken at seq {seq}; run "
                                "`stallbox verify` and call support")
        prev = bytes(digest)
    return prev
