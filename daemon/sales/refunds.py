"""Refund a journaled sale: whole, per line or per unit, in one transaction.

The sale's own ``sale.completed`` event is the record a refund mirrors
(``billing.refunds``): per line, per tax rate and per tender, never more than
was paid. The units already refunded are read from ``refund_lines`` inside the
same journal transaction that appends the ``sale.refunded`` event, and the
journal runs one transaction at a time, so two tablets refunding the same
units at once cannot both pass: the second sees the first's rows and gets a
ConflictError (HTTP 409) saying how many units are left.

Cash goes back as a payout from the drawer; vouchers and gift cards as their
own tender. A refund that would pay anything back to a card is refused until
the terminal integration (#3) can run the terminal's refund or reversal.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from daemon.billing.cash import CashRounding
from daemon.billing.pricing import TaxTotal
from daemon.billing.refunds import (
    PaidLine,
    PaidSale,
    Refund,
    refund,
    remaining_units,
)
from daemon.billing.tenders import Payment, Settlement
from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.money import Currency

_LOG = logging.getLogger(__name__)
CARD_REFUND_LATER = "card refunds need the terminal (coming with #3)"


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Units per sale line to give back; no units means everything left."""

    client_ref: str
    units: tuple[tuple[int, int], ...] = ()
    reason: str = ""
    tablet: str = ""


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """The refund as journaled; created is False when client_ref was seen before."""

    created: bool
    refund: dict[str, Any]


def create_refund(tx: Tx, sale_id: str, request: RefundRequest) -> RefundOutcome:
    """Journal a refund of a sale, checked against every refund before it."""
    seen = tx.execute("SELECT sale_id, record FROM refunds WHERE client_ref = ?",
                      (request.client_ref,)).fetchone()
    if seen:
        if seen[0] != sale_id:
            raise ConflictError("this client_ref already refunded another sale")
        return RefundOutcome(False, json.loads(seen[1]))
    data = sale_event(tx.conn, sale_id)
    paid = paid_from_event(data)
    before = refunded_units(tx.conn, sale_id, len(paid.lines))
    units = dict(request.units) or remaining_units(paid, before)
    if not units:
        raise ConflictError(f"sale {sale_id} is already refunded in full")
    result = refund(paid, refunded_before=before, units=units,
                    currency=Currency.of(data["currency"]))
    if any(t.method == "card" and t.amount_minor for t in result.tenders):
        raise InputError(CARD_REFUND_LATER, field="lines")
    refund_id = secrets.token_hex(8)
    body = refund_body(refund_id, sale_id, data, request, result)
    event = tx.append("sale.refunded", body)
    record = {**body, "seq": event.seq, "created_at": event.ts}
    _write_read_models(tx, record, result)
    _LOG.debug("refund %s of sale %s at seq %d", refund_id, sale_id, event.seq)
    return RefundOutcome(True, record)


def _write_read_models(tx: Tx, record: dict[str, Any], result: Refund) -> None:
    """Insert the refund and its lines."""
    tx.execute(
        "INSERT INTO refunds (id, sale_id, seq, client_ref, created_at, tablet,"
        " total_minor, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (record["id"], record["sale_id"], record["seq"], record["client_ref"],
         record["created_at"], record["tablet"], result.total_minor,
         canonical_bytes(record)))
    tx.executemany(
        "INSERT INTO refund_lines (refund_id, sale_id, line_index, qty,"
        " amount_minor) VALUES (?, ?, ?, ?, ?)",
        [(record["id"], record["sale_id"], x.index, x.qty, x.amount_minor)
         for x in result.lines])


def sale_event(conn: Any, sale_id: str) -> dict[str, Any]:
    """Return the data of a sale's sale.completed event."""
    row = conn.execute("SELECT e.body FROM sales s JOIN events e ON e.seq = s.seq"
                       " WHERE s.id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id!r}")
    data: dict[str, Any] = json.loads(row[0])["data"]
    return data


def paid_from_event(data: dict[str, Any]) -> PaidSale:
    """Rebuild what the sale paid from its event (older events lack the extras)."""
    lines = tuple(PaidLine(x["sku"], x["name"], x["qty"],
                           x.get("paid_minor", x["amount_minor"]), x["tax_code"])
                  for x in data["lines"])
    taxes = tuple(TaxTotal(t["code"], t["label"], t["rate_bp"], t["net_minor"],
                           t["tax_minor"], t["gross_minor"]) for t in data["taxes"])
    payments = tuple(Payment(p["method"], p["amount_minor"], p.get("ref", ""))
                     for p in data["payments"])
    cash = next((p for p in data["payments"] if p["method"] == "cash"), None)
    settlement = Settlement(data["total_minor"], data.get("rounding_minor", 0),
                            payments, cash["tendered_minor"] if cash else 0,
                            data["change_minor"])
    step, mode = data.get("cash_rounding", (1, "half_up"))
    return PaidSale(lines, taxes, settlement, CashRounding(step, mode))


def refunded_units(conn: Any, sale_id: str, count: int) -> list[int]:
    """Return the units refunded so far per line of a sale."""
    units = [0] * count
    rows = conn.execute("SELECT line_index, sum(qty) FROM refund_lines"
                        " WHERE sale_id = ? GROUP BY line_index", (sale_id,))
    for index, qty in rows:
        units[index] = qty
    return units


def refund_body(refund_id: str, sale_id: str, sale: dict[str, Any],
                request: RefundRequest, result: Refund) -> dict[str, Any]:
    """Return the sale.refunded body: lines, tax per rate and tenders paid back."""
    kinds = [x.get("kind", "goods") for x in sale["lines"]]
    return {
        "id": refund_id, "sale_id": sale_id, "client_ref": request.client_ref,
        "tablet": request.tablet, "reason": request.reason,
        "currency": sale["currency"],
        "lines": [{"line": x.index, "sku": x.sku, "name": x.name, "qty": x.qty,
                   "amount_minor": x.amount_minor, "kind": kinds[x.index]}
                  for x in result.lines],
        "taxes": [{"code": t.code, "label": t.label, "rate_bp": t.rate_bp,
                   "net_minor": t.net_minor, "tax_minor": t.tax_minor,
                   "gross_minor": t.gross_minor} for t in result.taxes],
        "goods_minor": result.goods_minor,
        "rounding_minor": result.rounding_minor,
        "tenders": [{"method": t.method, "amount_minor": t.amount_minor,
                     "ref": t.ref} for t in result.tenders],
        "total_minor": result.total_minor,
    }


def list_refunds(conn: Any, sale_id: str) -> list[dict[str, Any]]:
    """Return a sale's refunds, oldest first."""
    rows = conn.execute("SELECT record FROM refunds WHERE sale_id = ? ORDER BY seq",
                        (sale_id,))
    return [json.loads(row[0]) for row in rows]
