"""The receiver's SQLite backend: one connection in one thread, WAL, fsync per batch."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from daemon.journal.canonical import GENESIS_HASH, chain_hash, parse_canonical
from daemon.journal.store import utc_now
from daemon.trust.excerpt import ExcerptCheck
from sync.errors import BatchRejected, JournalTruncated
from sync.protocol import Head
from sync.receiver import billing, trust
from sync.receiver.invoices import (
    SALE_KIND,
    attach_related,
    invoice_from_sale,
    sale_ref,
)
from sync.receiver.model import IncomingEvent, IngestResult, StallRecord, VerifiedBatch
from sync.receiver.receipts import check_receipt
from sync.receiver.verify import plan_ingest

_LOG = logging.getLogger(__name__)
T = TypeVar("T")
DB_FILE = "receiver.sqlite3"
BUSY_TIMEOUT_MS = 5000
SCHEMA = """
CREATE TABLE IF NOT EXISTS stalls (
    stall_id        TEXT PRIMARY KEY,
    public_key      BLOB    NOT NULL,
    revoked         INTEGER NOT NULL DEFAULT 0,
    enrolled_at     TEXT    NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_hash       BLOB    NOT NULL,
    events_stored   INTEGER NOT NULL DEFAULT 0,
    last_batch_at   TEXT    NOT NULL DEFAULT '',
    clock_offset_ms INTEGER,
    clock           TEXT    NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    stall_id    TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    ts          TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    received_at TEXT    NOT NULL,
    UNIQUE (stall_id, seq)
);
CREATE TABLE IF NOT EXISTS batches (
    stall_id    TEXT    NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    received_at TEXT    NOT NULL,
    stored      INTEGER NOT NULL,
    PRIMARY KEY (stall_id, first_seq, last_seq)
);
-- Invoices are built from the sale event when read; this is their index.
CREATE TABLE IF NOT EXISTS invoices (
    stall_id        TEXT    NOT NULL,
    sale_id         TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    clock_offset_ms INTEGER,
    PRIMARY KEY (stall_id, sale_id)
);
CREATE INDEX IF NOT EXISTS invoices_seq ON invoices (stall_id, seq);
CREATE TABLE IF NOT EXISTS enrolment_tokens (
    token_hash TEXT PRIMARY KEY,
    stall_id   TEXT    NOT NULL,
    expires_at REAL    NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
-- Trust (batch format v2): each stall's certified epoch keys and the seals
-- that signed its chain, kept so the whole history can be checked again.
CREATE TABLE IF NOT EXISTS epochs (
    stall_id   TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    public_key BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    cert       TEXT    NOT NULL,
    PRIMARY KEY (stall_id, epoch)
);
CREATE TABLE IF NOT EXISTS seals (
    stall_id  TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    epoch     INTEGER NOT NULL,
    hash      BLOB    NOT NULL,
    signature BLOB    NOT NULL,
    PRIMARY KEY (stall_id, seq)
);
-- Every event about a sale after its sale.completed or sale.pending: payments,
-- refunds, cancellations; an invoice lists them (credit notes, tenders).
CREATE TABLE IF NOT EXISTS sale_events (
    stall_id TEXT    NOT NULL,
    sale_id  TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    PRIMARY KEY (stall_id, sale_id, seq)
) WITHOUT ROWID;
"""
# Columns later versions added to stalls; an older database gains them at open.
_STALL_ADDED = (("head_seq", "INTEGER NOT NULL DEFAULT 0"),
                ("journal_id", "TEXT NOT NULL DEFAULT ''"),
                ("alarm", "TEXT NOT NULL DEFAULT ''"))
_INVOICE_COLUMNS = ("i.seq, i.clock_offset_ms, e.body FROM invoices AS i JOIN events"
                    " AS e ON e.stall_id = i.stall_id AND e.seq = i.seq")
_STALL_COLUMNS = ("stall_id, public_key, revoked, enrolled_at, last_seq, last_hash,"
                  " events_stored, last_batch_at, clock_offset_ms, clock, head_seq,"
                  " journal_id, alarm")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) the receiver database with durable settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(stalls)")}
    for name, ddl in _STALL_ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE stalls ADD COLUMN {name} {ddl}")
    billing.create(conn)  # revenue per stream, display counts (#8)
    return conn


def _stall(conn: sqlite3.Connection, stall_id: str) -> StallRecord | None:
    row = conn.execute(f"SELECT {_STALL_COLUMNS} FROM stalls WHERE stall_id = ?",
                       (stall_id,)).fetchone()
    if row is None:
        return None
    return StallRecord(row[0], bytes(row[1]), bool(row[2]), row[3], row[4],
                       bytes(row[5]), row[6], row[7], row[8], json.loads(row[9]),
                       row[10], row[11], row[12])


def _hash_at(conn: sqlite3.Connection, stall_id: str, seq: int) -> bytes | None:
    row = conn.execute("SELECT hash FROM events WHERE stall_id = ? AND seq = ?",
                       (stall_id, seq)).fetchone()
    return bytes(row[0]) if row else None


def enroll_sync(conn: sqlite3.Connection, stall_id: str, public_key: bytes) -> None:
    """Insert the stall or replace its key (a re-flashed box), keeping its tail."""
    conn.execute(
        "INSERT INTO stalls (stall_id, public_key, enrolled_at, last_hash)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (stall_id) DO UPDATE SET"
        " public_key = excluded.public_key, revoked = 0,"
        " enrolled_at = excluded.enrolled_at",
        (stall_id, public_key, utc_now(), GENESIS_HASH))


class SqliteStorage:
    """Storage on one SQLite file; every call runs in the store's own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="receiver-db")

    @classmethod
    def in_dir(cls, data_dir: Path) -> SqliteStorage:
        """Open the store at DIR/receiver.sqlite3."""
        return cls(data_dir / DB_FILE)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self._conn)

    async def get_stall(self, stall_id: str) -> StallRecord | None:
        """Return the stall, or None if it was never enrolled."""
        return await self._call(lambda conn: _stall(conn, stall_id))

    async def enroll(self, stall_id: str, public_key: bytes) -> None:
        """Register (or re-key) a stall's device public key."""
        await self._call(lambda conn: enroll_sync(conn, stall_id, public_key))

    async def revoke(self, stall_id: str) -> None:
        """Refuse the stall's batches from now on."""
        await self._call(lambda conn: conn.execute(
            "UPDATE stalls SET revoked = 1 WHERE stall_id = ?", (stall_id,)))

    async def create_enrolment_token(self, stall_id: str, ttl_s: int) -> str:
        """Return a one-time token a stall can enrol itself with."""
        token = secrets.token_urlsafe(24)
        digest = hashlib.sha256(token.encode()).hexdigest()
        await self._call(lambda conn: conn.execute(
            "INSERT INTO enrolment_tokens (token_hash, stall_id, expires_at)"
            " VALUES (?, ?, ?)", (digest, stall_id, time.time() + ttl_s)))
        return token

    async def redeem_enrolment_token(self, token: str, stall_id: str,
                                     public_key: bytes) -> bool:
        """Enrol the stall if the token is valid, unused and for this stall."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        return await self._call(lambda conn: _redeem(conn, digest, stall_id,
                                                     public_key))

    async def ingest(self, batch: VerifiedBatch, received_at: str,
                     clock_offset_ms: int | None) -> IngestResult:
        """Store the batch's new events atomically; raise GapError or BatchRejected."""
        return await self._call(
            lambda conn: _ingest(conn, batch, received_at, clock_offset_ms))

    async def push_head(self, stall_id: str, head: Head, clock: dict[str, Any],
                        received_at: str) -> IngestResult:
        """Check and record a reported chain head; raise JournalTruncated."""
        return await self._call(
            lambda conn: push_head(conn, stall_id, head, clock, received_at))

    async def invoices(self, stall_id: str, after_seq: int,
                       limit: int) -> list[dict[str, Any]]:
        """Return the stall's invoices in sequence order after after_seq."""
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                f"SELECT {_INVOICE_COLUMNS} WHERE i.stall_id = ? AND i.seq > ?"
                " ORDER BY i.seq LIMIT ?", (stall_id, after_seq, limit)).fetchall()
            return [_invoice(conn, stall_id, row) for row in rows]

        return await self._call(read)

    async def invoice(self, stall_id: str, sale_id: str) -> dict[str, Any] | None:
        """Return one invoice, or None."""
        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                f"SELECT {_INVOICE_COLUMNS} WHERE i.stall_id = ? AND i.sale_id = ?",
                (stall_id, sale_id)).fetchone()
            return _invoice(conn, stall_id, row) if row else None

        return await self._call(read)

    async def stream_revenue(self, stall_id: str, after_seq: int,
                             upto_seq: int) -> list[dict[str, Any]]:
        """Return revenue per live stream from sales in (after_seq, upto_seq]."""
        return await self._call(lambda conn: billing.stream_revenue(
            conn, stall_id, after_seq, upto_seq))

    async def display_totals(self, stall_id: str, after_seq: int,
                             upto_seq: int) -> dict[str, list[dict[str, Any]]]:
        """Return display counts per slot and hour, and per sponsor."""
        return await self._call(lambda conn: billing.display_totals(
            conn, stall_id, after_seq, upto_seq))

    async def receipt_check(self, text: str) -> ExcerptCheck:
        """Check a receipt excerpt against the stored journals."""
        return await self._call(lambda conn: check_receipt(conn, text))

    async def verify_chain(self, stall_id: str) -> tuple[int, str]:
        """Walk the stall's stored events; return (events checked, first fault)."""
        return await self._call(lambda conn: walk_chain(conn, stall_id))

    async def close(self) -> None:
        """Finish queued calls and close the database."""
        await asyncio.to_thread(self._pool.shutdown, True)
        self._conn.close()


def _invoice(conn: sqlite3.Connection, stall_id: str,
             row: tuple[Any, ...]) -> dict[str, Any]:
    seq, offset, body = row
    record = parse_canonical(bytes(body))
    invoice = invoice_from_sale(stall_id, seq, record["ts"], record["data"], offset)
    related = conn.execute(
        "SELECT e.seq, e.kind, e.body FROM sale_events AS s JOIN events AS e ON"
        " e.stall_id = s.stall_id AND e.seq = s.seq WHERE s.stall_id = ? AND"
        " s.sale_id = ? ORDER BY s.seq", (stall_id, invoice["sale_id"])).fetchall()
    attach_related(invoice, [(seq, kind, parse_canonical(bytes(body))["data"])
                             for seq, kind, body in related])
    return invoice


def _redeem(conn: sqlite3.Connection, digest: str, stall_id: str,
            public_key: bytes) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        used = conn.execute(
            "UPDATE enrolment_tokens SET used = 1 WHERE token_hash = ? AND"
            " stall_id = ? AND used = 0 AND expires_at > ?",
            (digest, stall_id, time.time())).rowcount
        if used:
            enroll_sync(conn, stall_id, public_key)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return bool(used)


def _ingest(conn: sqlite3.Connection, batch: VerifiedBatch, received_at: str,
            clock_offset_ms: int | None) -> IngestResult:
    conn.execute("BEGIN IMMEDIATE")
    try:
        stall = _live_stall(conn, batch.stall_id)
        hash_at = _hash_reader(conn, batch.stall_id)
        trust.check_head(stall, batch.head, hash_at)
        new = plan_ingest(stall, batch, hash_at)
        journal_id, epochs = trust.check_batch(stall, batch, new,
                                               _epoch_keys(conn, stall.stall_id))
        _store(conn, stall, batch, new, received_at, clock_offset_ms)
        _store_trust(conn, stall, batch, new, journal_id, epochs)
        conn.execute("COMMIT")
    except JournalTruncated as err:
        conn.execute("ROLLBACK")
        _raise_alarm(conn, batch.stall_id, str(err))
        raise
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return IngestResult(max(stall.last_seq, batch.last_seq), len(new))


def _live_stall(conn: sqlite3.Connection, stall_id: str) -> StallRecord:
    stall = _stall(conn, stall_id)
    if stall is None or stall.revoked:
        raise BatchRejected(401, "Unknown device", "stall is not enrolled")
    return stall


def _hash_reader(conn: sqlite3.Connection,
                 stall_id: str) -> Callable[[int], bytes | None]:
    return lambda seq: _hash_at(conn, stall_id, seq)


def _epoch_keys(conn: sqlite3.Connection, stall_id: str) -> dict[int, bytes]:
    rows = conn.execute("SELECT epoch, public_key FROM epochs WHERE stall_id = ?",
                        (stall_id,))
    return {epoch: bytes(public) for epoch, public in rows}


def _raise_alarm(conn: sqlite3.Connection, stall_id: str, why: str) -> None:
    """Record a truncation alarm on the stall's status, outside the refused batch."""
    conn.execute("UPDATE stalls SET alarm = ? WHERE stall_id = ?",
                 (f"{utc_now()}: {why}", stall_id))
    _LOG.error("stall %s: %s", stall_id, why)


def push_head(conn: sqlite3.Connection, stall_id: str, head: Head,
              clock: dict[str, Any], received_at: str) -> IngestResult:
    """Check and record a reported chain head; answer with the seq held."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        stall = _live_stall(conn, stall_id)
        trust.check_head(stall, head, _hash_reader(conn, stall_id))
        conn.execute("UPDATE stalls SET head_seq = max(head_seq, ?), clock = ?"
                     " WHERE stall_id = ?", (head.seq, json.dumps(clock), stall_id))
        conn.execute("COMMIT")
    except JournalTruncated as err:
        conn.execute("ROLLBACK")
        _raise_alarm(conn, stall_id, str(err))
        raise
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return IngestResult(stall.last_seq, 0)


def _store(conn: sqlite3.Connection, stall: StallRecord, batch: VerifiedBatch,
           new: Sequence[IncomingEvent], received_at: str,
           clock_offset_ms: int | None) -> None:
    sid = stall.stall_id
    conn.executemany(
        "INSERT INTO events (stall_id, seq, ts, kind, body, hash, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(sid, e.seq, e.ts, e.kind, e.body, e.hash, received_at) for e in new])
    conn.executemany(
        "INSERT OR IGNORE INTO invoices (stall_id, sale_id, seq, clock_offset_ms)"
        " VALUES (?, ?, ?, ?)",
        [(sid, e.data["id"], e.seq, clock_offset_ms) for e in new
         if e.kind == SALE_KIND])
    conn.executemany(
        "INSERT OR IGNORE INTO sale_events (stall_id, sale_id, seq, kind)"
        " VALUES (?, ?, ?, ?)", [(sid, ref, e.seq, e.kind) for e in new
                                 if e.kind != SALE_KIND and (ref := sale_ref(e))])
    billing.index_events(conn, sid, new)
    tail = new[-1] if new else None
    conn.execute(
        "UPDATE stalls SET last_seq = ?, last_hash = ?, events_stored ="
        " events_stored + ?, last_batch_at = ?, clock_offset_ms = ?, clock = ?,"
        " head_seq = max(head_seq, ?) WHERE stall_id = ?",
        (tail.seq if tail else stall.last_seq, tail.hash if tail else stall.last_hash,
         len(new), received_at, clock_offset_ms, json.dumps(batch.clock),
         batch.head.seq if tail else 0, sid))
    conn.execute(
        "INSERT OR IGNORE INTO batches (stall_id, first_seq, last_seq, received_at,"
        " stored) VALUES (?, ?, ?, ?, ?)",
        (sid, batch.first_seq, batch.last_seq, received_at, len(new)))


def _store_trust(conn: sqlite3.Connection, stall: StallRecord, batch: VerifiedBatch,
                 new: Sequence[IncomingEvent], journal_id: str,
                 epochs: Sequence[trust.EpochRow]) -> None:
    sid = stall.stall_id
    first_new = new[0].seq if new else batch.last_seq + 1
    conn.executemany(
        "INSERT INTO seals (stall_id, seq, epoch, hash, signature)"
        " VALUES (?, ?, ?, ?, ?)",
        [(sid, *seal) for seal in batch.seals if seal[0] >= first_new])
    conn.executemany(
        "INSERT INTO epochs (stall_id, epoch, public_key, seq, cert)"
        " VALUES (?, ?, ?, ?, ?)",
        [(sid, e.epoch, e.public_key, e.seq, json.dumps(e.cert)) for e in epochs])
    if journal_id != stall.journal_id:
        conn.execute("UPDATE stalls SET journal_id = ? WHERE stall_id = ?",
                     (journal_id, sid))


def walk_chain(conn: sqlite3.Connection, stall_id: str) -> tuple[int, str]:
    """Check a stall's stored events link from genesis; return (count, fault)."""
    prev, expected = GENESIS_HASH, 1
    rows = conn.execute("SELECT seq, body, hash FROM events WHERE stall_id = ?"
                        " ORDER BY seq", (stall_id,))
    for seq, body, digest in rows:
        if seq != expected:
            return expected - 1, f"gap: expected seq {expected}, found {seq}"
        if chain_hash(prev, bytes(body)) != bytes(digest):
            return expected - 1, f"seq {seq}: hash does not match"
        prev, expected = bytes(digest), expected + 1
    return expected - 1, ""
