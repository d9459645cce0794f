"""Card refunds through the terminal: reversal or refund, never lost, never doubled.

A refund with a card part is journaled ``refund.pending`` (its units reserved
in ``refund_lines``) together with a ``refund.intent_created`` *before* the
terminal is asked, in one transaction. The terminal's answer moves the intent
once, like a payment's: ``refund.approved`` completes the refund
(``sale.refunded``, slip queued) in the same transaction; ``refund.declined``
or ``refund.aborted`` gives the units back (``refund.failed``);
``refund.unknown`` keeps them reserved until the last-transaction enquiry or a
person settles it (``refund.resolved``).

Which command: a reversal (ZVT 06 30) when the whole card payment goes back
and it is still in the terminal's open batch (no end-of-day since), so the
customer never sees the charge settle; otherwise a refund (06 31) of the amount.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.payments import intents
from daemon.sales import refunds
from daemon.sales.refunds import PlannedRefund, RefundOutcome

logger = logging.getLogger(__name__)

KINDS = ("refund", "reversal")
_COLUMNS = ("id, refund_id, sale_id, terminal, kind, amount_minor, currency,"
            " payment_id, status, created_at, seq, updated_seq, result, print_lines,"
            " resolved_by")
NEXT_STEP = {
    "pending": "Ask the customer to hold their card to the terminal.",
    "approved": "Paid back to the card. Hand over the refund slip.",
    "declined": "The terminal refused the refund: nothing was paid back and the "
                "items are not refunded. Try again or ask the card holder's bank.",
    "aborted": "Cancelled: nothing was paid back and the items are not refunded. "
               "Try again.",
    "unknown": "The terminal did not say whether it paid the card back. Look at "
               "the terminal's last slip: if it shows the refund, confirm "
               "\"Approved\"; if not, confirm \"Not paid back\".",
}


def open_card_refund(tx: Tx, plan: PlannedRefund, terminal: str,
                     reversal_ok: bool) -> RefundOutcome:
    """Reserve the refund and journal its card intent, before the terminal hears."""
    payment = paid_card(tx.conn, plan.sale_id)
    intents.check_terminal_free(tx, terminal)
    amount = plan.card_minor
    kind = "reversal" if reversal_ok and _reversible(tx, payment, amount) \
        else "refund"
    record = refunds.reserve_refund(tx, plan, refunds.new_record(tx, plan),
                                    "refund.pending")
    intent_id = "ri_" + secrets.token_hex(8)
    event = tx.append("refund.intent_created", {
        "intent_id": intent_id, "refund_id": record["id"], "sale_id": plan.sale_id,
        "kind": kind, "amount_minor": amount, "currency": payment["currency"],
        "payment_id": payment["id"], "terminal": terminal})
    tx.execute(f"INSERT INTO refund_intents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?,"
               " ?, ?, 'pending', ?, ?, ?, '{}', '[]', '')",
               (intent_id, record["id"], plan.sale_id, terminal, kind, amount,
                payment["currency"], payment["id"], event.ts, event.seq, event.seq))
    card = {"intent_id": intent_id, "kind": kind, "amount_minor": amount}
    return RefundOutcome(True, refunds.update_record(tx, record["id"], card=card))


def paid_card(conn: Any, sale_id: str) -> dict[str, Any]:
    """Return the approved card payment of a sale, or refuse the refund."""
    row = conn.execute("SELECT id FROM payment_intents WHERE sale_id = ? AND"
                       " status = 'approved' ORDER BY seq DESC LIMIT 1",
                       (sale_id,)).fetchone()
    if row is None:
        raise ConflictError(f"sale {sale_id} has no approved card payment to pay "
                            "back")
    return intents.get_intent(conn, row[0])


def _reversible(tx: Tx, payment: dict[str, Any], amount: int) -> bool:
    """Say whether the whole payment goes back within its open batch."""
    open_batch = tx.execute("SELECT eod_seq IS NULL FROM payment_intents WHERE"
                            " id = ?", (payment["id"],)).fetchone()[0]
    earlier = tx.execute("SELECT COUNT(*) FROM refund_intents WHERE payment_id = ?"
                         " AND status IN ('approved', 'unknown', 'pending')",
                         (payment["id"],)).fetchone()[0]
    booked = payment["result"].get("amount_minor", payment["amount_minor"])
    return bool(open_batch) and not earlier and amount == booked and isinstance(
        payment["result"].get("receipt_no"), int)


def settle(tx: Tx, intent_id: str, outcome: str, result: dict[str, Any],
           lines: list[str], print_terminal_lines: bool) -> dict[str, Any]:
    """Journal the terminal's answer and move the refund with it."""
    intent = get_intent(tx.conn, intent_id)
    if intent["outcome"] != "pending":
        raise ConflictError(f"refund {intent_id} is already {intent['outcome']}")
    lines = [intents.scrub_line(line) for line in lines]
    event = tx.append(f"refund.{outcome}", {
        "intent_id": intent_id, "refund_id": intent["refund_id"],
        "sale_id": intent["sale_id"], "amount_minor": intent["amount_minor"],
        "result": result, "print_lines": lines})
    tx.execute("UPDATE refund_intents SET status = ?, updated_seq = ?, result = ?,"
               " print_lines = ? WHERE id = ?",
               (outcome, event.seq, canonical_bytes(result), canonical_bytes(lines),
                intent_id))
    _follow(tx, intent, outcome, lines if print_terminal_lines else [])
    return get_intent(tx.conn, intent_id)


def resolve(tx: Tx, intent_id: str, outcome: str, by: str, how: str,
            result: dict[str, Any], print_terminal_lines: bool) -> dict[str, Any]:
    """Journal who settled an unknown refund and how; move the refund with it."""
    if outcome not in ("approved", "declined"):
        raise InputError("outcome must be approved or declined", field="outcome")
    intent = get_intent(tx.conn, intent_id)
    if intent["outcome"] != "unknown":
        raise ConflictError(f"refund {intent_id} is {intent['outcome']}, not "
                            "unknown: there is nothing to resolve")
    merged = {**intent["result"], **{k: v for k, v in result.items() if v}}
    event = tx.append("refund.resolved", {
        "intent_id": intent_id, "refund_id": intent["refund_id"],
        "sale_id": intent["sale_id"], "amount_minor": intent["amount_minor"],
        "outcome": outcome, "by": by, "how": how, "result": merged})
    tx.execute("UPDATE refund_intents SET status = ?, updated_seq = ?, result = ?,"
               " resolved_by = ? WHERE id = ?",
               (outcome, event.seq, canonical_bytes(merged), f"{by} ({how})",
                intent_id))
    lines = intent["terminal_lines"] if print_terminal_lines else []
    _follow(tx, intent, outcome, lines)
    return get_intent(tx.conn, intent_id)


def _follow(tx: Tx, intent: dict[str, Any], outcome: str, lines: list[str]) -> None:
    """Complete, release or mark the refund as its card part went."""
    refund_id = intent["refund_id"]
    if outcome == "approved":
        record = refunds.update_record(tx, refund_id, terminal_lines=lines)
        refunds.complete_refund(tx, record)
    elif outcome == "unknown":
        refunds.update_record(tx, refund_id, status="unknown")
    else:
        refunds.release_refund(tx, refund_id, f"card {intent['kind']} {outcome}")


def intent_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """Shape a refund_intents row as the API shows it."""
    outcome = row[8]
    result = json.loads(row[12])
    return {"id": row[0], "type": "refund", "refund_id": row[1], "sale_id": row[2],
            "terminal": row[3], "kind": row[4], "amount_minor": row[5],
            "currency": row[6], "payment_id": row[7],
            "status": intents.API_STATUS[outcome], "outcome": outcome,
            "created_at": row[9], "seq": row[10], "updated_seq": row[11],
            "message": result.get("message", ""), "result": result,
            "terminal_lines": json.loads(row[13]), "resolved_by": row[14],
            "next_step": NEXT_STEP[outcome], "prompt": ""}


def get_intent(conn: Any, intent_id: str) -> dict[str, Any]:
    """Return one refund intent or raise NotFoundError."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM refund_intents WHERE id = ?",
                       (intent_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no card refund {intent_id[:40]!r}")
    return intent_dict(row)


def with_outcome(conn: Any, outcome: str) -> list[dict[str, Any]]:
    """Return every refund intent in one state, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM refund_intents WHERE status = ?"
                        " ORDER BY seq", (outcome,)).fetchall()
    return [intent_dict(row) for row in rows]


def is_refund_intent(intent_id: str) -> bool:
    """Say whether an intent id names a card refund rather than a payment."""
    return intent_id.startswith("ri_")
