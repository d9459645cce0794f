"""Payment intents in the journal: one row per card attempt, one event per change.

An intent is journaled (``payment.intent_created``) before the terminal is
asked. Its outcome moves it once: ``payment.approved``, ``payment.declined``,
``payment.aborted`` (nothing was charged) or ``payment.unknown``. Only an
unknown intent moves again, by ``payment.resolved``, naming who decided and
how. Only data a receipt may show is stored: amount, result, masked PAN,
brand, auth code, trace, receipt number, terminal id.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
from typing import Any

from daemon.errors import ConflictError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from device.terminal.base import PaymentResult

logger = logging.getLogger(__name__)

OUTCOMES = ("approved", "declined", "aborted", "unknown")
# The four states the API and #4's payment rows know; aborted is not charged.
API_STATUS = {"pending": "pending", "approved": "approved", "declined": "declined",
              "aborted": "declined", "unknown": "unknown"}
NEXT_STEP = {
    "pending": "Ask the customer to follow the terminal.",
    "approved": "Paid. Hand over the goods and the receipt.",
    "declined": "The card was declined: nothing was charged. Try another card "
                "or another way to pay.",
    "aborted": "Cancelled: nothing was charged. Try again or choose another way "
               "to pay.",
    "unknown": "The terminal did not say whether it charged the card. Look at "
               "the terminal's last slip: if it says approved, confirm "
               "\"Approved\"; if it says declined or there is none, confirm "
               "\"Not charged\".",
}
_COLUMNS = ("id, sale_id, attempt, terminal, amount_minor, currency, status,"
            " created_at, seq, updated_seq, result, print_lines, resolved_by")
_CARD_FIELDS = ("brand", "masked_pan", "auth_code", "trace", "receipt_no",
                "terminal_id")
_LONG_DIGITS = re.compile(r"\d(?:[ -]?\d){11,18}")


def mask_pan(pan: str | None) -> str | None:
    """Keep at most the first 6 and last 4 digits of a (masked) PAN."""
    if pan is None:
        return None
    chars = [c for c in pan if not c.isspace()]
    keep_head = 6 if len(chars) >= 16 else 0
    return "".join(c if (i < keep_head or i >= len(chars) - 4 or not c.isdigit())
                   else "*" for i, c in enumerate(chars))


def scrub_line(line: str) -> str:
    """Mask any card-number-like run of digits in a terminal print line."""
    return _LONG_DIGITS.sub(lambda m: mask_pan(m.group()) or "", line)


def stored_result(result: PaymentResult) -> dict[str, Any]:
    """Return the fields of a terminal result that may be stored, PAN masked."""
    return {"amount_minor": result.amount_minor, "currency": result.currency,
            "masked_pan": mask_pan(result.masked_pan), "brand": result.brand,
            "auth_code": result.auth_code, "trace": result.trace,
            "receipt_no": result.receipt_no, "terminal_id": result.terminal_id,
            "result_code": result.result_code, "booked_at": result.booked_at,
            "message": result.message[:200]}


def check_terminal_free(tx: Tx, terminal: str) -> None:
    """Refuse a new attempt while another one is in flight on this terminal."""
    row = tx.execute("SELECT sale_id FROM payment_intents WHERE terminal = ?"
                     " AND status = 'pending' UNION ALL SELECT sale_id FROM"
                     " refund_intents WHERE terminal = ? AND status = 'pending'",
                     (terminal, terminal)).fetchone()
    if row is not None:
        raise ConflictError(f"the card terminal is busy with sale {row[0]}; "
                            "finish or cancel that payment first")


def create_intent(tx: Tx, sale_id: str, client_ref: str, amount_minor: int,
                  currency: str, terminal: str) -> str:
    """Journal a new attempt for a sale and return its id."""
    check_terminal_free(tx, terminal)
    attempt = tx.execute("SELECT COALESCE(MAX(attempt), 0) + 1 FROM payment_intents"
                         " WHERE sale_id = ?", (sale_id,)).fetchone()[0]
    intent_id = "pi_" + secrets.token_hex(8)
    event = tx.append("payment.intent_created", {
        "intent_id": intent_id, "sale_id": sale_id, "client_ref": client_ref,
        "attempt": attempt, "amount_minor": amount_minor, "currency": currency,
        "terminal": terminal})
    tx.execute(f"INSERT INTO payment_intents ({_COLUMNS}) VALUES"
               " (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, '{}', '[]', '')",
               (intent_id, sale_id, attempt, terminal, amount_minor, currency,
                event.ts, event.seq, event.seq))
    return intent_id


def record_outcome(tx: Tx, intent: dict[str, Any], outcome: str,
                   result: dict[str, Any], lines: list[str]) -> int:
    """Journal the terminal's answer to a pending intent; return the event seq."""
    if intent["outcome"] != "pending":
        raise ConflictError(f"payment {intent['id']} is already {intent['outcome']}")
    lines = [scrub_line(line) for line in lines]
    event = tx.append(f"payment.{outcome}", {
        "intent_id": intent["id"], "sale_id": intent["sale_id"],
        "amount_minor": intent["amount_minor"], "result": result,
        "print_lines": lines})
    tx.execute("UPDATE payment_intents SET status = ?, updated_seq = ?, result = ?,"
               " print_lines = ? WHERE id = ?",
               (outcome, event.seq, canonical_bytes(result),
                canonical_bytes(lines), intent["id"]))
    return event.seq


def record_resolution(tx: Tx, intent: dict[str, Any], outcome: str, by: str,
                      how: str, result: dict[str, Any]) -> int:
    """Journal who settled an unknown intent and how; return the event seq."""
    if intent["outcome"] != "unknown":
        raise ConflictError(f"payment {intent['id']} is {intent['outcome']}, "
                            "not unknown: there is nothing to resolve")
    merged = {**intent["result"], **{k: v for k, v in result.items() if v}}
    event = tx.append("payment.resolved", {
        "intent_id": intent["id"], "sale_id": intent["sale_id"],
        "amount_minor": intent["amount_minor"], "outcome": outcome, "by": by,
        "how": how, "result": merged})
    tx.execute("UPDATE payment_intents SET status = ?, updated_seq = ?, result = ?,"
               " resolved_by = ? WHERE id = ?",
               (outcome, event.seq, canonical_bytes(merged), f"{by} ({how})",
                intent["id"]))
    return event.seq


def intent_dict(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    """Shape a payment_intents row as the API shows it."""
    result = json.loads(row[10])
    outcome = row[6]
    return {"id": row[0], "type": "payment", "sale_id": row[1], "attempt": row[2],
            "terminal": row[3], "amount_minor": row[4], "currency": row[5],
            "status": API_STATUS[outcome], "outcome": outcome,
            "created_at": row[7], "seq": row[8], "updated_seq": row[9],
            "message": result.get("message", ""),
            "card": {key: result.get(key) for key in _CARD_FIELDS},
            "result": result, "terminal_lines": json.loads(row[11]),
            "resolved_by": row[12], "next_step": NEXT_STEP[outcome], "prompt": ""}


def get_intent(conn: Any, intent_id: str) -> dict[str, Any]:
    """Return one intent or raise NotFoundError."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM payment_intents WHERE id = ?",
                       (intent_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no payment {intent_id[:40]!r}")
    return intent_dict(row)


def latest_for_sale(conn: Any, sale_id: str) -> dict[str, Any] | None:
    """Return the sale's newest attempt, or None for a sale without a card."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM payment_intents WHERE sale_id = ?"
                       " ORDER BY attempt DESC LIMIT 1", (sale_id,)).fetchone()
    return intent_dict(row) if row else None


def with_outcome(conn: Any, outcome: str) -> list[dict[str, Any]]:
    """Return every intent in one state, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM payment_intents WHERE status = ?"
                        " ORDER BY seq", (outcome,)).fetchall()
    return [intent_dict(row) for row in rows]


def booked_numbers(conn: Any, terminal: str) -> set[tuple[str, int]]:
    """Return the (kind, number) receipt and trace numbers already on intents."""
    rows = conn.execute("SELECT result FROM payment_intents WHERE terminal = ?"
                        " AND status IN ('approved', 'declined') UNION ALL"
                        " SELECT result FROM refund_intents WHERE terminal = ?"
                        " AND status IN ('approved', 'declined')",
                        (terminal, terminal))
    seen: set[tuple[str, int]] = set()
    for (raw,) in rows:
        result = json.loads(raw)
        for key in ("receipt_no", "trace"):
            if isinstance(result.get(key), int):
                seen.add((key, result[key]))
    return seen
