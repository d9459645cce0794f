"""E-receipt events and their read model (email_receipts, shredded_days).

Events, none of which holds an address in clear:

- ``receipt.email_requested`` {sale_id, day, token, consent}: the customer
  asked for the receipt by mail and agreed to it; token is the address sealed
  under the day's data key (daemon.keys.datakeys), bound to the sale;
- ``receipt.email_sent`` {sale_id, attempt};
- ``receipt.email_failed`` {sale_id, attempt, final, reason}: reason is one
  word of FAILURE_REASONS (never the server's text, which may quote the
  address); final when no retry follows;
- ``datakey.shredded`` {day}: the day key was erased.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.errors import ConflictError, NotFoundError
from daemon.journal.store import Tx

REQUESTED, SENT, FAILED = "receipt.email_requested", "receipt.email_sent", \
    "receipt.email_failed"
SHREDDED = "datakey.shredded"
FAILURE_REASONS = ("connection", "tls", "auth", "rejected", "temporary", "shredded",
                   "config")


def check_request(conn: sqlite3.Connection | Tx, sale_id: str, day: str) -> bool:
    """Refuse a request that cannot be journaled; True when it replaces a failed one.

    Run before the address is sealed (so a refused request makes no day key)
    and again in the transaction that journals it.
    """
    row = conn.execute("SELECT status FROM sales WHERE id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id[:40]!r}")
    if row[0] != "completed":
        raise ConflictError(f"sale {sale_id} is {row[0]}: only a completed sale "
                            "has a receipt to send")
    if conn.execute("SELECT 1 FROM shredded_days WHERE day = ?", (day,)).fetchone():
        raise ConflictError("today's data key is already shredded")
    asked = conn.execute("SELECT status FROM email_receipts WHERE sale_id = ?",
                         (sale_id,)).fetchone()
    if asked is not None and asked[0] != "failed":
        raise ConflictError("this sale's receipt was already asked for by e-mail")
    return asked is not None


def request_email(tx: Tx, sale_id: str, day: str, token: str) -> dict[str, Any]:
    """Journal a consented e-receipt request for a completed sale.

    A request after a mail that failed for good (a mistyped, refused address)
    replaces it: the row starts again from this event, as a replay does.
    """
    replaces = check_request(tx, sale_id, day)
    event = tx.append(REQUESTED, {"sale_id": sale_id, "day": day, "token": token,
                                  "consent": True})
    tx.execute("INSERT OR REPLACE INTO email_receipts (sale_id, day, token, status,"
               " attempts, error, seq, updated_seq)"
               " VALUES (?, ?, ?, 'queued', 0, '', ?, ?)",
               (sale_id, day, token, event.seq, event.seq))
    return {"sale_id": sale_id, "status": "queued", "seq": event.seq,
            "replaced": replaces}


def mark_sent(tx: Tx, sale_id: str, attempt: int) -> None:
    """Journal that the receipt mail was accepted by the SMTP server."""
    event = tx.append(SENT, {"sale_id": sale_id, "attempt": attempt})
    tx.execute("UPDATE email_receipts SET status = 'sent', attempts = ?, error = '',"
               " updated_seq = ? WHERE sale_id = ?", (attempt, event.seq, sale_id))


def mark_failed(tx: Tx, sale_id: str, attempt: int, reason: str, final: bool) -> None:
    """Journal a failed attempt; a final one ends the retries."""
    if reason not in FAILURE_REASONS:
        raise ValueError(f"unknown failure reason {reason!r}")
    event = tx.append(FAILED, {"sale_id": sale_id, "attempt": attempt,
                               "final": final, "reason": reason})
    tx.execute("UPDATE email_receipts SET status = ?, attempts = ?, error = ?,"
               " updated_seq = ? WHERE sale_id = ?",
               ("failed" if final else "queued", attempt, reason, event.seq,
                sale_id))


def record_shred(tx: Tx, day: str) -> None:
    """Journal that a day's data key was erased; a day already recorded is not again."""
    if tx.execute("SELECT 1 FROM shredded_days WHERE day = ?", (day,)).fetchone():
        return
    event = tx.append(SHREDDED, {"day": day})
    tx.execute("INSERT OR IGNORE INTO shredded_days (day, seq) VALUES (?, ?)",
               (day, event.seq))


def email_status(conn: sqlite3.Connection, sale_id: str) -> dict[str, Any] | None:
    """Return a sale's e-receipt state for pages and the API (no address)."""
    row = conn.execute("SELECT status, attempts, error, day FROM email_receipts"
                       " WHERE sale_id = ?", (sale_id,)).fetchone()
    if row is None:
        return None
    shredded = conn.execute("SELECT 1 FROM shredded_days WHERE day = ?",
                            (row[3],)).fetchone() is not None
    return {"status": row[0], "attempts": row[1], "error": row[2],
            "address_shredded": shredded}


def queued(conn: sqlite3.Connection, limit: int = 50) -> list[tuple[str, str, int]]:
    """Return (sale_id, token, attempts) of mails still to send, oldest first."""
    return conn.execute("SELECT sale_id, token, attempts FROM email_receipts"
                        " WHERE status = 'queued' ORDER BY seq LIMIT ?",
                        (limit,)).fetchall()


def shreddable_days(conn: sqlite3.Connection, acked_seq: int | None) -> set[str]:
    """Return days whose e-mail sales all synced and have no mail still queued.

    acked_seq None means no sync is configured: nothing waits for a receiver.
    """
    rows = conn.execute("SELECT day, MAX(seq), SUM(status = 'queued')"
                        " FROM email_receipts GROUP BY day").fetchall()
    return {day for day, last, waiting in rows
            if not waiting and (acked_seq is None or last <= acked_seq)}
