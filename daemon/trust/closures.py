"""Closures: signed events with period and perpetual (grand) totals.

The shift close is ``shift.closed`` with the Z report (daemon.sales.shifts,
issue 4); this module adds its ``perpetual`` totals and ends the epoch in the
same transaction. The day close is ``day.closed``, made here: the sales since
the previous day close (the period) added to that close's perpetual totals, so
deleting a day's events breaks the running sum every later closure carries.
A closure is signed by the rotation in its transaction: the next key's
certificate, signed by the closing key over a head that includes the closure.
New totals go under ``period`` and ``perpetual`` as new keys, so old closures
stay readable.
"""

from __future__ import annotations

from typing import Any

from daemon.journal.canonical import canonical_bytes, parse_canonical
from daemon.journal.store import Tx

DAY_KIND = "day.closed"
CLOSURE_KINDS = (DAY_KIND,)
SALE_KIND = "sale.completed"


def empty_totals() -> dict[str, Any]:
    """Return totals with nothing counted."""
    return {"sales": 0, "gross_minor": 0, "by_rate": {}, "by_tender": {}}


def add_sale(totals: dict[str, Any], data: dict[str, Any]) -> None:
    """Count one sale.completed event's body into totals."""
    totals["sales"] += 1
    totals["gross_minor"] += data["total_minor"]
    for tax in data.get("taxes", ()):
        rate = totals["by_rate"].setdefault(
            tax["code"], {"net_minor": 0, "tax_minor": 0, "gross_minor": 0})
        for key in rate:
            rate[key] += tax[key]
    for payment in data.get("payments", ()):
        method = payment.get("method", "cash")
        totals["by_tender"][method] = (totals["by_tender"].get(method, 0)
                                       + payment["amount_minor"])


def merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Return into + other, per count, rate and tender."""
    out = parse_canonical(canonical_bytes(into))
    out["sales"] += other["sales"]
    out["gross_minor"] += other["gross_minor"]
    for code, rate in other["by_rate"].items():
        mine = out["by_rate"].setdefault(code, dict.fromkeys(rate, 0))
        for key, value in rate.items():
            mine[key] = mine.get(key, 0) + value
    for method, amount in other["by_tender"].items():
        out["by_tender"][method] = out["by_tender"].get(method, 0) + amount
    return out


def perpetual_after_shift(tx: Tx) -> dict[str, Any]:
    """Return the perpetual totals a shift.closed about to be appended carries.

    Called by the shift close (daemon.sales.shifts) inside its transaction: the
    previous shift's perpetual totals plus this shift's sales. A previous close
    without them (journals from before this field) restarts the sum at seq 0.
    """
    last = tx.execute("SELECT seq, report FROM shifts ORDER BY seq DESC LIMIT 1")
    row = last.fetchone()
    before = parse_canonical(bytes(row[1])).get("perpetual") if row else None
    if before is None:
        return period_totals(tx, 0)
    return merge(before, period_totals(tx, row[0]))


def sign_closure(tx: Tx, reason: str) -> None:
    """End the epoch in the closure's transaction: the old key signs the closure."""
    if tx.signer is not None:
        tx.rotate_epoch(reason)


def close_day(tx: Tx, client_ref: str) -> dict[str, Any]:
    """Journal day.closed with period and perpetual totals, then rotate the key."""
    seen = tx.execute("SELECT seq, body FROM closures WHERE client_ref = ?",
                      (client_ref,)).fetchone()
    if seen:
        return {"created": False, "seq": seen[0], **parse_canonical(bytes(seen[1]))}
    last = tx.execute("SELECT seq, body FROM closures WHERE kind = ?"
                      " ORDER BY seq DESC LIMIT 1", (DAY_KIND,)).fetchone()
    from_seq = last[0] if last else 0
    before = parse_canonical(bytes(last[1]))["perpetual"] if last else empty_totals()
    period = period_totals(tx, from_seq)
    data = {"client_ref": client_ref, "from_seq": from_seq, "to_seq": _head(tx),
            "period": period, "perpetual": merge(before, period)}
    event = tx.append(DAY_KIND, data)
    tx.execute("INSERT INTO closures (seq, kind, client_ref, from_seq, body)"
               " VALUES (?, ?, ?, ?, ?)",
               (event.seq, DAY_KIND, client_ref, from_seq, canonical_bytes(data)))
    sign_closure(tx, "day_close")
    return {"created": True, "seq": event.seq, **data}


def _head(tx: Tx) -> int:
    row = tx.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return int(row[0])


def period_totals(tx: Tx, from_seq: int) -> dict[str, Any]:
    """Sum the sales journaled after from_seq."""
    totals = empty_totals()
    rows = tx.execute("SELECT body FROM events WHERE seq > ? AND kind = ?",
                      (from_seq, SALE_KIND))
    for (body,) in rows:
        add_sale(totals, parse_canonical(bytes(body))["data"])
    return totals
