"""Refund a journaled sale: whole, per line or per unit, in one transaction.

The sale's own ``sale.completed`` event is the record a refund mirrors
(``billing.refunds``): per line, per tax rate and per tender, never more than
was paid. The units already refunded are read from ``refund_lines`` inside the
same journal transaction that appends the ``sale.refunded`` event, and the
journal runs one transaction at a time, so two tablets refunding the same
units at once cannot both pass: the second sees the first's rows and gets a
ConflictError (HTTP 409) saying how many units are left.

Cash goes back as a payout from the drawer; vouchers and gift cards as their
own tender. A refund that pays anything back to a card goes through the
terminal (``daemon.payments.card_refund``): it is journaled ``refund.pending``
with its units reserved, and becomes ``sale.refunded`` (with its slip queued)
only once the terminal approved the card part.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
from daemon.errors import ConflictError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.money import Currency
from daemon.sales import giftcards
from daemon.sales.receipt import PaymentRow, Receipt, ReceiptLine, TaxRow

_LOG = logging.getLogger(__name__)
NO_TERMINAL = ("this refund pays a card back and no card terminal is configured "
               "([terminal] in the config)")


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


@dataclass(frozen=True, slots=True)
class PlannedRefund:
    """A refund computed and checked inside the journal transaction."""

    sale_id: str
    sale: dict[str, Any]  # the sale.completed data it mirrors
    request: RefundRequest
    result: Refund

    @property
    def card_minor(self) -> int:
        """Return what goes back to a card."""
        return sum(t.amount_minor for t in self.result.tenders if t.method == "card")


CardHook = Callable[[Tx, PlannedRefund], "RefundOutcome"]


def create_refund(tx: Tx, sale_id: str, request: RefundRequest,
                  card: CardHook | None = None) -> RefundOutcome:
    """Journal a refund of a sale, checked against every refund before it.

    A card part is handed to ``card`` (the terminal's refund flow) instead.
    """
    seen = tx.execute("SELECT sale_id, record FROM refunds WHERE client_ref = ?",
                      (request.client_ref,)).fetchone()
    if seen:
        if seen[0] != sale_id:
            raise ConflictError("this client_ref already refunded another sale")
        return RefundOutcome(False, json.loads(seen[1]))
    plan = plan_refund(tx, sale_id, request)
    if plan.card_minor:
        if card is None:
            raise ConflictError(NO_TERMINAL)
        return card(tx, plan)
    record = new_record(tx, plan)
    return RefundOutcome(True, complete_refund(tx, record, plan.result))


def plan_refund(tx: Tx, sale_id: str, request: RefundRequest) -> PlannedRefund:
    """Compute a refund against the units refunded (or reserved) before it."""
    data = sale_event(tx.conn, sale_id)
    paid = paid_from_event(data)
    before = refunded_units(tx.conn, sale_id, len(paid.lines))
    units = dict(request.units) or remaining_units(paid, before)
    if not units:
        raise ConflictError(f"sale {sale_id} is already refunded in full")
    result = refund(paid, refunded_before=before, units=units,
                    currency=Currency.of(data["currency"]))
    return PlannedRefund(sale_id, data, request, result)


def new_record(tx: Tx, plan: PlannedRefund) -> dict[str, Any]:
    """Return the record of a new refund of a plan (not yet journaled)."""
    return refund_body(secrets.token_hex(8), plan.sale_id, plan.sale, plan.request,
                       plan.result)


def reserve_refund(tx: Tx, plan: PlannedRefund, record: dict[str, Any],
                   kind: str) -> dict[str, Any]:
    """Journal a refund waiting for a device; its units are taken meanwhile."""
    record = {**record, "status": "pending"}
    event = tx.append(kind, record)
    record.update(seq=event.seq, created_at=event.ts)
    _write_read_models(tx, record, plan.result)
    return record


def complete_refund(tx: Tx, record: dict[str, Any],
                    result: Refund | None = None) -> dict[str, Any]:
    """Journal sale.refunded, write (new) or move (reserved) its rows, queue a slip."""
    body = {k: v for k, v in record.items() if k not in ("seq", "created_at")}
    body["status"] = "completed"
    body.update(giftcards.refund_part(tx, sale_event(tx.conn, body["sale_id"]), body))
    event = tx.append("sale.refunded", body)
    giftcards.apply_refund(tx, body, body["sale_id"], body["id"], event.seq)
    done = {**body, "seq": event.seq, "created_at": record.get("created_at", event.ts)}
    if result is None:  # reserved before: move the row to the completing event
        tx.execute("UPDATE refunds SET seq = ?, record = ? WHERE id = ?",
                   (event.seq, canonical_bytes(done), done["id"]))
    else:
        _write_read_models(tx, done, result)
    queue_slip(tx, done["id"], done["sale_id"], event.seq, reprint=False)
    _LOG.debug("refund %s of sale %s at seq %d", done["id"], done["sale_id"],
               event.seq)
    return done


def release_refund(tx: Tx, refund_id: str, reason: str) -> dict[str, Any]:
    """Give a refund's reserved units back: the card part was not paid back."""
    record = update_record(tx, refund_id, status="failed", failed_because=reason)
    tx.append("refund.failed", {"id": refund_id, "sale_id": record["sale_id"],
                                "reason": reason})
    tx.execute("DELETE FROM refund_lines WHERE refund_id = ?", (refund_id,))
    return record


def load_refund(conn: Any, refund_id: str) -> dict[str, Any]:
    """Return one refund's record or raise NotFoundError."""
    row = conn.execute("SELECT record FROM refunds WHERE id = ?",
                       (refund_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no refund {refund_id[:40]!r}")
    record: dict[str, Any] = json.loads(row[0])
    record.setdefault("status", "completed")
    return record


def update_record(tx: Tx, refund_id: str, **changes: Any) -> dict[str, Any]:
    """Change fields of a refund's stored record (state, card part)."""
    record = {**load_refund(tx.conn, refund_id), **changes}
    tx.execute("UPDATE refunds SET record = ? WHERE id = ?",
               (canonical_bytes(record), refund_id))
    return record


def queue_slip(tx: Tx, refund_id: str, sale_id: str, seq: int, *,
               reprint: bool) -> int:
    """Queue a print job that prints the refund's slip."""
    cursor = tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
        " VALUES (?, ?, 'queued', ?, ?)", (sale_id, int(reprint), seq, seq))
    job_id = int(cursor.lastrowid or 0)
    tx.execute("INSERT INTO print_job_refunds (job_id, refund_id) VALUES (?, ?)",
               (job_id, refund_id))
    return job_id


def queue_slip_reprint(tx: Tx, refund_id: str) -> int:
    """Journal an explicit reprint of a refund slip and queue it."""
    row = tx.execute("SELECT sale_id, record FROM refunds WHERE id = ?",
                     (refund_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no refund {refund_id[:40]!r}")
    if json.loads(row[1]).get("status", "completed") != "completed":
        raise ConflictError("only a completed refund has a slip to reprint")
    event = tx.append("print.reprint_requested", {"sale_id": row[0],
                                                  "refund_id": refund_id})
    return queue_slip(tx, refund_id, row[0], event.seq, reprint=True)


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
    row = conn.execute("SELECT e.body, s.status FROM sales s JOIN events e"
                       " ON e.seq = s.seq WHERE s.id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id!r}")
    if row[1] != "completed":
        raise ConflictError(f"sale {sale_id} is {row[1]}: only a completed sale "
                            "is refunded")
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
                   "amount_minor": x.amount_minor, "kind": kinds[x.index],
                   "tax_code": sale["lines"][x.index]["tax_code"]}
                  for x in result.lines],
        "taxes": [{"code": t.code, "label": t.label, "rate_bp": t.rate_bp,
                   "net_minor": t.net_minor, "tax_minor": t.tax_minor,
                   "gross_minor": t.gross_minor} for t in result.taxes],
        "goods_minor": result.goods_minor,
        "rounding_minor": result.rounding_minor,
        "tenders": [{"method": t.method, "amount_minor": t.amount_minor,
                     "ref": t.ref} for t in result.tenders],
        "total_minor": result.total_minor,
        "header": sale.get("header", []), "footer": sale.get("footer", []),
        "local_time": datetime.now().astimezone().strftime("%d.%m.%Y %H:%M"),
    }


def list_refunds(conn: Any, sale_id: str) -> list[dict[str, Any]]:
    """Return a sale's refunds, oldest first."""
    rows = conn.execute("SELECT record FROM refunds WHERE sale_id = ? ORDER BY seq",
                        (sale_id,))
    return [json.loads(row[0]) for row in rows]


REFUND_LABELS = {"cash": "Cash paid out", "card": "Back to card",
                 "voucher": "Back to voucher", "gift_card": "Back to gift card"}


def refund_slip(record: dict[str, Any], *, reprint: bool = False) -> Receipt:
    """Return the refund slip of a refund record: lines, tax per rate, tenders."""
    return Receipt(
        header=tuple(line for line in record.get("header", ()) if line),
        sale_id=record["id"], seq=record["seq"],
        time_local=record.get("local_time", record["created_at"][:16]),
        currency=record["currency"],
        lines=tuple(ReceiptLine(x["qty"], x["name"], _unit(x), x["amount_minor"],
                                x.get("tax_code", "")) for x in record["lines"]),
        taxes=tuple(TaxRow(t["code"], t["label"], t["net_minor"], t["tax_minor"],
                           t["gross_minor"]) for t in record["taxes"]),
        total_minor=record["total_minor"],
        payments=tuple(PaymentRow(REFUND_LABELS.get(t["method"], t["method"]),
                                  t["amount_minor"]) for t in record["tenders"]),
        change_minor=0, footer=tuple(record.get("footer", ())), reprint=reprint,
        rounding_minor=record["rounding_minor"],
        terminal_lines=tuple(record.get("terminal_lines", ())),
        refund_of=record["sale_id"])


def _unit(line: dict[str, Any]) -> int:
    """Return the per-unit amount shown for a refunded line (floor when uneven)."""
    return int(line["amount_minor"] // line["qty"]) if line["qty"] else 0
