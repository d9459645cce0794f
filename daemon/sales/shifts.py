"""Shifts and the Z report: totals of every sale and refund since the last close.

A shift is the run of journal events after the previous ``shift.closed`` (or
from the start). Closing it computes the Z report from the ``sale.completed``
and ``sale.refunded`` events inside the same transaction that appends
``shift.closed`` with the report, so a sale committed in the same batch is in
exactly one shift. The report before closing (an X report) is the same
computation on a read connection.

Cash expected in the drawer = opening float + cash kept on sales (rounded,
change already given back; negative for payouts) - cash paid out on refunds.
The variance is counted - expected, entered by the manager.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from daemon.billing.carbon import GRAMS_PER_KG, format_co2e
from daemon.billing.rounding import round_fraction
from daemon.errors import ConflictError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.sales.giftcards import liability
from daemon.trust import closures

TOP_PRODUCTS = 10
REPORT_KINDS = ("sale.completed", "sale.refunded")
GIFT_CARD_MOVES = ("issued", "redeemed", "restored", "voided")


@dataclass(frozen=True, slots=True)
class ShiftClose:
    """A manager's close: the cash counted and the float the drawer started with."""

    client_ref: str
    counted_cash_minor: int
    opening_float_minor: int = 0
    tablet: str = ""


@dataclass(slots=True)
class _Totals:
    """Running sums over a shift's events."""

    sales: int = 0
    refunds: int = 0
    taxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tenders: dict[str, dict[str, int]] = field(default_factory=dict)
    cash_kept: int = 0
    cash_out: int = 0
    refunded: int = 0
    rounding: int = 0
    discounts: int = 0
    contributions: int = 0
    fees: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    carbon: list[Fraction] = field(default_factory=list)
    carbon_range: list[Fraction] = field(default_factory=lambda: [Fraction(0)] * 2)
    products: dict[str, list[Any]] = field(default_factory=dict)
    hours: Counter[int] = field(default_factory=Counter)
    hour_gross: Counter[int] = field(default_factory=Counter)
    streams: dict[str, list[int]] = field(default_factory=dict)  # id: [n, gross]
    gift_cards: Counter[str] = field(default_factory=Counter)  # what moved, minor
    first_ts: str = ""
    last_ts: str = ""


def last_close_seq(conn: Any) -> int:
    """Return the journal seq the current shift starts after (0 for the first)."""
    row = conn.execute("SELECT max(last_seq) FROM shifts").fetchone()
    return int(row[0] or 0)


def shift_events(conn: Any, after_seq: int,
                 until_seq: int | None = None) -> Iterable[tuple[int, str, str,
                                                                dict[str, Any]]]:
    """Yield (seq, ts, kind, data) of the sales and refunds in a seq range."""
    sql = ("SELECT seq, ts, kind, body FROM events WHERE seq > ? AND kind IN"
           " (?, ?)")
    params: list[Any] = [after_seq, *REPORT_KINDS]
    if until_seq is not None:
        sql += " AND seq <= ?"
        params.append(until_seq)
    for seq, ts, kind, body in conn.execute(sql + " ORDER BY seq", params):
        yield seq, ts, kind, json.loads(body)["data"]


def shift_report(conn: Any, currency: str, *, opening_float_minor: int = 0,
                 counted_cash_minor: int | None = None) -> dict[str, Any]:
    """Return the X report of the open shift (the Z report once closed)."""
    after = last_close_seq(conn)
    totals = _Totals()
    last = after
    for seq, ts, kind, data in shift_events(conn, after):
        last = seq
        _add(totals, ts, kind, data)
    report = _report(totals, currency, after + 1, last, opening_float_minor,
                     counted_cash_minor)
    # Gift cards: moved this shift, and what all cards are still worth (owed).
    report["gift_cards"] = {**{f"{k}_minor": 0 for k in GIFT_CARD_MOVES},
                            **totals.gift_cards, **liability(conn)}
    return report


def needs_close(conn: Any, client_ref: str) -> bool:
    """Say whether a close with client_ref would journal a new Z report."""
    if conn.execute("SELECT 1 FROM shifts WHERE client_ref = ?",
                    (client_ref,)).fetchone():
        return False
    row = conn.execute("SELECT 1 FROM events WHERE seq > ? AND kind IN (?, ?)"
                       " LIMIT 1", (last_close_seq(conn), *REPORT_KINDS)).fetchone()
    return row is not None


def close_shift(tx: Tx, request: ShiftClose, currency: str,
                terminal: dict[str, Any] | None = None) -> dict[str, Any]:
    """Journal shift.closed with its Z report; the same client_ref returns it.

    ``terminal`` is how the card terminal's end-of-day compared (or why it
    did not run); it goes into the report as it is.
    """
    seen = tx.execute("SELECT report FROM shifts WHERE client_ref = ?",
                      (request.client_ref,)).fetchone()
    if seen:
        return {"created": False, **json.loads(seen[0])}
    report = shift_report(tx.conn, currency,
                          opening_float_minor=request.opening_float_minor,
                          counted_cash_minor=request.counted_cash_minor)
    if report["sales_count"] == 0 and report["refunds_count"] == 0:
        raise ConflictError("nothing was sold or refunded since the last close")
    report["tablet"] = request.tablet
    if terminal is not None:
        report["terminal"] = terminal
    report["perpetual"] = closures.perpetual_after_shift(tx)  # grand totals (#6)
    event = tx.append("shift.closed", report)
    report.update(seq=event.seq, closed_at=event.ts)
    tx.execute("INSERT INTO shifts (seq, client_ref, closed_at, first_seq, last_seq,"
               " report) VALUES (?, ?, ?, ?, ?, ?)",
               (event.seq, request.client_ref, event.ts, report["first_seq"],
                event.seq, canonical_bytes(report)))
    closures.sign_closure(tx, "shift_close")  # the closing epoch key signs it (#6)
    return {"created": True, **report}


def closed_shift(conn: Any, seq: int) -> dict[str, Any]:
    """Return a closed shift's Z report by the seq of its shift.closed event."""
    row = conn.execute("SELECT report FROM shifts WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        raise NotFoundError(f"no closed shift at seq {seq}")
    report: dict[str, Any] = json.loads(row[0])
    return report


def closed_shifts(conn: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Return the newest closed shifts' headline figures."""
    rows = conn.execute("SELECT seq, closed_at, report FROM shifts ORDER BY seq DESC"
                        " LIMIT ?", (limit,))
    out = []
    for seq, closed_at, report in rows:
        data = json.loads(report)
        out.append({"seq": seq, "closed_at": closed_at,
                    "sales_count": data["sales_count"],
                    "gross_minor": data["gross_minor"],
                    "variance_minor": data["cash"]["variance_minor"]})
    return out


def _add(totals: _Totals, ts: str, kind: str, data: dict[str, Any]) -> None:
    """Add one sale or refund event to the running totals."""
    totals.first_ts = totals.first_ts or ts
    totals.last_ts = ts
    if kind == "sale.completed":
        _add_sale(totals, ts, data)
    else:
        _add_refund(totals, data)


def _add_sale(totals: _Totals, ts: str, data: dict[str, Any]) -> None:
    """Add a sale: taxes, tenders, rounding, fees, carbon, products, hour."""
    totals.sales += 1
    _add_taxes(totals, data["taxes"], "sales")
    for payment in data["payments"]:
        row = totals.tenders.setdefault(payment["method"], _tender_row())
        row["count"] += 1
        row["amount_minor"] += payment["amount_minor"]
        if payment["method"] == "cash":
            totals.cash_kept += payment["amount_minor"]
    totals.rounding += data.get("rounding_minor", 0)
    for line in data["lines"]:
        _add_line(totals, line)
    totals.contributions += data.get("contribution", {}).get("amount_minor", 0)
    _add_carbon(totals, data.get("carbon"))
    _add_gift_cards(totals, data.get("gift_cards"))
    stream_id = data.get("live", {}).get("stream_id", "")
    if stream_id:  # a sale made during a live stream (#8)
        row = totals.streams.setdefault(stream_id, [0, 0])
        row[0] += 1
        row[1] += data["total_minor"]
    hour = _local_hour(ts)
    totals.hours[hour] += 1
    totals.hour_gross[hour] += data["total_minor"]


def _add_line(totals: _Totals, line: dict[str, Any]) -> None:
    """Count a line into fees or products, and its discounts."""
    kind = line.get("kind", "goods")
    totals.discounts += line.get("line_discount_minor", 0) + line.get(
        "sale_discount_minor", 0)
    if kind == "goods":
        entry = totals.products.setdefault(line["sku"], [line["name"], 0, 0])
        entry[1] += line["qty"]
        entry[2] += line.get("paid_minor", line["amount_minor"])
    elif kind != "contribution":
        fee = totals.fees.setdefault((kind, line.get("packaging", "")), [0, 0])
        fee[0] += line["qty"]
        fee[1] += line["amount_minor"]


def _add_carbon(totals: _Totals, carbon: dict[str, Any] | None) -> None:
    """Add a sale's exact estimate and its range."""
    if not carbon:
        return
    estimate = carbon["estimate"]
    totals.carbon.append(Fraction(estimate["total_kg"]))
    low, high = estimate["range_kg"]
    totals.carbon_range[0] += Fraction(low)
    totals.carbon_range[1] += Fraction(high)


def _add_refund(totals: _Totals, data: dict[str, Any]) -> None:
    """Add a refund: taxes and tenders paid back, cash paid out of the drawer."""
    totals.refunds += 1
    totals.refunded += data["total_minor"]
    totals.rounding -= data["rounding_minor"]
    _add_taxes(totals, data["taxes"], "refunds")
    for tender in data["tenders"]:
        row = totals.tenders.setdefault(tender["method"], _tender_row())
        row["refunded_minor"] += tender["amount_minor"]
        if tender["method"] == "cash":
            totals.cash_out += tender["amount_minor"]
    _add_gift_cards(totals, data.get("gift_cards"))


def _add_gift_cards(totals: _Totals, part: dict[str, Any] | None) -> None:
    """Add what a sale or refund did to gift cards (giftcards.py)."""
    for key, cards in (part or {}).items():
        totals.gift_cards[f"{key}_minor"] += sum(c["amount_minor"] for c in cards)


def _tender_row() -> dict[str, int]:
    return {"count": 0, "amount_minor": 0, "refunded_minor": 0}


def _add_taxes(totals: _Totals, taxes: list[dict[str, Any]], side: str) -> None:
    """Add net, tax and gross per rate to the sales or refunds side."""
    for tax in taxes:
        row = totals.taxes.setdefault(tax["code"], {
            "code": tax["code"], "label": tax["label"], "rate_bp": tax["rate_bp"],
            "sales": [0, 0, 0], "refunds": [0, 0, 0]})
        for i, key in enumerate(("net_minor", "tax_minor", "gross_minor")):
            row[side][i] += tax[key]


def _local_hour(ts: str) -> int:
    """Return the box's local hour of a journal UTC timestamp."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone().hour


def _grams(kg: Fraction) -> int:
    return round_fraction(kg * GRAMS_PER_KG, "half_up")


def carbon_text(carbon: dict[str, Any]) -> str:
    """Show a report's footprint (integer grams) in kg or g, as receipts print it."""
    total, low, high = (format_co2e(Fraction(carbon[key], GRAMS_PER_KG))
                        for key in ("co2e_g", "low_g", "high_g"))
    return f"{total} CO2e (range {low} to {high}; no offsets netted)"


def _report(totals: _Totals, currency: str, first_seq: int, last_seq: int,
            opening_float: int, counted: int | None) -> dict[str, Any]:
    """Shape the running totals as the Z report."""
    taxes = [_tax_row(row) for _, row in sorted(totals.taxes.items())]
    expected = opening_float + totals.cash_kept - totals.cash_out
    carbon_kg = sum(totals.carbon, Fraction(0))
    return {
        "currency": currency, "first_seq": first_seq, "last_seq": last_seq,
        "opened_at": totals.first_ts, "last_at": totals.last_ts,
        "sales_count": totals.sales, "refunds_count": totals.refunds,
        "gross_minor": sum(t["gross_minor"] for t in taxes),
        "net_minor": sum(t["net_minor"] for t in taxes),
        "tax_minor": sum(t["tax_minor"] for t in taxes),
        "taxes": taxes,
        "tenders": [{"method": m, **row} for m, row in sorted(totals.tenders.items())],
        "refunds_minor": totals.refunded,
        "cash": {"opening_float_minor": opening_float,
                 "sales_minor": totals.cash_kept, "refunds_minor": totals.cash_out,
                 "expected_minor": expected, "counted_minor": counted,
                 "variance_minor": None if counted is None else counted - expected},
        "rounding_minor": totals.rounding,
        "discounts_minor": totals.discounts,
        "contributions_minor": totals.contributions,
        "fees": [{"kind": k, "packaging": p, "qty": q, "amount_minor": a}
                 for (k, p), (q, a) in sorted(totals.fees.items())],
        "carbon": {"co2e_g": _grams(carbon_kg),
                   "low_g": _grams(totals.carbon_range[0]),
                   "high_g": _grams(totals.carbon_range[1]),
                   "sales": len(totals.carbon)},
        "top_products": _top(totals.products),
        "streams": [{"stream_id": k, "sales": n, "gross_minor": g}
                    for k, (n, g) in sorted(totals.streams.items())],
        "hours": [{"hour": h, "count": totals.hours[h],
                   "gross_minor": totals.hour_gross[h]} for h in totals.hours],
    }


def _tax_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return one rate's sales, refunds and what is left of them."""
    sales, refunds = row["sales"], row["refunds"]
    left = [s - r for s, r in zip(sales, refunds, strict=True)]
    return {"code": row["code"], "label": row["label"], "rate_bp": row["rate_bp"],
            "net_minor": left[0], "tax_minor": left[1], "gross_minor": left[2],
            "sales_gross_minor": sales[2], "refunds_gross_minor": refunds[2]}


def _top(products: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Return the best-selling products by amount, then quantity."""
    ranked = sorted(products.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
    return [{"sku": sku, "name": name, "qty": qty, "amount_minor": amount}
            for sku, (name, qty, amount) in ranked[:TOP_PRODUCTS]]


def per_hour(report: dict[str, Any]) -> list[tuple[int, int, int]]:
    """Return (hour, sales, gross) for each hour from the first sale to the last.

    Hours are in the order the shift met them, so a shift past midnight runs
    22, 23, 0, 1; hours without sales in between are filled with zeros.
    """
    hours = {h["hour"]: h for h in report["hours"]}
    if not hours:
        return []
    first, last = report["hours"][0]["hour"], report["hours"][-1]["hour"]
    span = (last - first) % 24 + 1
    out = []
    for step in range(span):
        hour = (first + step) % 24
        row = hours.get(hour, {})
        out.append((hour, row.get("count", 0), row.get("gross_minor", 0)))
    return out

