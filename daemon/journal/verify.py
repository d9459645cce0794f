"""Walk the journal read-only and check its hash chain and gap-free sequence."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.journal.canonical import GENESIS_HASH, chain_hash, parse_canonical

FETCH_ROWS = 4096


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a walk: how many events were checked and the first fault."""

    events: int
    head_seq: int
    bad_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open the journal read-only; safe while the daemon writes it."""
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


Row = tuple[int, str, str, bytes, bytes, bytes]


def _rows(conn: sqlite3.Connection) -> Iterator[Row]:
    cursor = conn.execute(
        "SELECT seq, ts, kind, body, prev_hash, hash FROM events ORDER BY seq")
    while rows := cursor.fetchmany(FETCH_ROWS):
        yield from rows


def verify_journal(path: Path) -> VerifyResult:
    """Check every event's link, body and sequence; stop at the first fault."""
    conn = open_readonly(path)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole walk
        expected_seq, prev, count = 1, GENESIS_HASH, 0
        for seq, ts, kind, body, prev_hash, digest in _rows(conn):
            fault = _check_event(expected_seq, prev, seq, ts, kind, body,
                                 prev_hash, digest)
            if fault:
                return VerifyResult(count, expected_seq - 1, expected_seq, fault)
            expected_seq, prev, count = seq + 1, digest, count + 1
        return VerifyResult(count, expected_seq - 1)
    finally:
        conn.close()


def _check_event(expected_seq: int, prev: bytes, seq: int, ts: str, kind: str,
                 body: bytes, prev_hash: bytes, digest: bytes) -> str:
    if isinstance(body, str):  # an edit through SQL text functions
        body = body.encode("utf-8")
    if seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {seq}"
    if bytes(prev_hash) != prev:
        return "prev_hash does not match the previous event's hash"
    if chain_hash(prev, bytes(body)) != bytes(digest):
        return "hash does not match SHA-256(prev_hash ‖ body)"
    try:
        record = parse_canonical(bytes(body))
    except ValueError as err:
        return f"body is not canonical JSON: {err}"
    if (record.get("seq"), record.get("ts"), record.get("kind")) != (seq, ts, kind):
        return "seq, ts or kind columns differ from the signed body"
    return ""
