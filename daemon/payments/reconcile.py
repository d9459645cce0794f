"""End-of-day: the terminal's batch totals against the journal's card payments.

The batch is every approved intent of the terminal not yet in an end-of-day:
payments count one and add their amount, card refunds (06 31) count one and
take theirs away, a reversal (06 30) takes its payment out again (count and
amount). Totals are compared per card brand (count and sum); every
difference, and every intent still unknown, is journaled as
``payment.reconciliation`` with the intents involved, next to the
``terminal.end_of_day`` event itself.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from daemon.journal.store import Tx
from device.terminal.base import EndOfDayResult

logger = logging.getLogger(__name__)

UNKNOWN_BRAND = "unknown brand"


SIGNS = {"payment": (1, 1), "refund": (1, -1), "reversal": (-1, -1)}


def journal_batch(tx: Tx, terminal: str) -> list[tuple[str, str, int, int]]:
    """Return (intent id, brand, count, amount) of the approved intents not closed."""
    rows = tx.execute(
        "SELECT id, 'payment', result, amount_minor, seq, NULL FROM payment_intents"
        " WHERE terminal = ? AND status = 'approved' AND eod_seq IS NULL UNION ALL"
        " SELECT r.id, r.kind, r.result, r.amount_minor, r.seq, p.result FROM"
        " refund_intents r JOIN payment_intents p ON p.id = r.payment_id WHERE"
        " r.terminal = ? AND r.status = 'approved' AND r.eod_seq IS NULL"
        " ORDER BY 5", (terminal, terminal)).fetchall()
    batch = []
    for intent_id, kind, raw, amount, _seq, paid_raw in rows:
        result = json.loads(raw)
        paid = json.loads(paid_raw) if paid_raw else {}
        booked = result.get("amount_minor")
        count, sign = SIGNS[kind]
        brand = result.get("brand") or paid.get("brand") or UNKNOWN_BRAND
        batch.append((intent_id, brand, count,
                      sign * (booked if isinstance(booked, int) else amount)))
    return batch


def per_brand(items: list[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    """Sum (brand, count, amount) items into {brand: (count, amount)}."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for brand, count, amount in items:
        sums[brand][0] += count
        sums[brand][1] += amount
    return {brand: (c, a) for brand, (c, a) in sorted(sums.items())}


def differences(terminal: dict[str, tuple[int, int]],
                journal: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """Return one row per brand whose count or sum differs."""
    rows = []
    for brand in sorted(set(terminal) | set(journal)):
        t_count, t_sum = terminal.get(brand, (0, 0))
        j_count, j_sum = journal.get(brand, (0, 0))
        if (t_count, t_sum) != (j_count, j_sum):
            rows.append({"brand": brand, "terminal_count": t_count,
                         "terminal_minor": t_sum, "journal_count": j_count,
                         "journal_minor": j_sum, "difference_minor": t_sum - j_sum})
    return rows


def record_end_of_day(tx: Tx, terminal: str, result: EndOfDayResult,
                      by: str) -> dict[str, Any]:
    """Journal the end-of-day and any difference; close the batch."""
    batch = journal_batch(tx, terminal)
    mine = per_brand([row[1:] for row in batch])
    theirs = per_brand([(t.brand, t.count, t.amount_minor) for t in result.totals
                        if t.count or t.amount_minor])
    diff = differences(theirs, mine)
    for row in diff:  # the transactions involved in each brand's difference
        row["intents"] = [b[0] for b in batch if b[1] == row["brand"]]
    unknown = [row[0] for row in tx.execute(
        "SELECT id FROM payment_intents WHERE terminal = ? AND status = 'unknown'"
        " UNION ALL SELECT id FROM refund_intents WHERE terminal = ? AND"
        " status = 'unknown'", (terminal, terminal))]
    report = {"terminal": terminal, "by": by, "total_minor": result.total_minor,
              "terminal_totals": _rows(theirs), "journal_totals": _rows(mine),
              "intents": [row[0] for row in batch], "differences": diff,
              "unknown": unknown}
    event = tx.append("terminal.end_of_day", report)
    for table in ("payment_intents", "refund_intents"):
        tx.executemany(f"UPDATE {table} SET eod_seq = ? WHERE id = ?",
                       [(event.seq, row[0]) for row in batch])
    if diff or unknown:
        tx.append("payment.reconciliation", {
            "terminal": terminal, "end_of_day_seq": event.seq, "differences": diff,
            "intents": report["intents"], "unknown": unknown})
        logger.warning("end-of-day of %s differs from the journal", terminal)
    return {**report, "seq": event.seq, "ts": event.ts, "balanced": not diff,
            "print_lines": list(result.print_lines)}


def _rows(totals: dict[str, tuple[int, int]]) -> list[dict[str, Any]]:
    return [{"brand": brand, "count": count, "amount_minor": amount}
            for brand, (count, amount) in totals.items()]
