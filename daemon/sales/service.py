"""Ring up a cash sale inside one journal transaction, idempotent by client_ref."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.billing.pricing import LineInput, SaleTotals, price_sale
from daemon.config import StallConfig
from daemon.errors import InputError, NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.sales.receipt import PaymentRow, Receipt, ReceiptLine, TaxRow

MAX_LINES = 200
MAX_QTY = 9999


@dataclass(frozen=True, slots=True)
class SaleRequest:
    """A checked request to sell lines for cash."""

    client_ref: str
    lines: tuple[tuple[str, int], ...]
    tendered_minor: int
    tablet: str = ""


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    """The sale as journaled; created is False when client_ref was seen before."""

    created: bool
    sale: dict[str, Any]


def create_sale(tx: Tx, request: SaleRequest, stall: StallConfig) -> SaleOutcome:
    """Journal a cash sale and queue its receipt; return the first sale on retry."""
    existing = tx.execute("SELECT id FROM sales WHERE client_ref = ?",
                          (request.client_ref,)).fetchone()
    if existing:
        return SaleOutcome(False, load_sale(tx.conn, existing[0]))
    totals = price_sale(_line_inputs(tx, request.lines), pricing=stall.pricing,
                        rates=stall.tax_rates, currency=stall.currency)
    if request.tendered_minor < totals.total_minor:
        raise InputError(
            f"tendered {stall.currency.format(request.tendered_minor)} is less than "
            f"the total {stall.currency.format(totals.total_minor)}",
            field="payment.tendered_minor")
    sale_id = secrets.token_hex(8)
    change = request.tendered_minor - totals.total_minor
    data = _event_body(sale_id, request, totals, change, stall)
    event = tx.append("sale.completed", data)
    receipt = canonical_bytes(_receipt_record(data, event.seq))
    tx.execute(
        "INSERT INTO sales (id, seq, client_ref, created_at, tablet, total_minor,"
        " currency, status, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, 'completed', ?)",
        (sale_id, event.seq, request.client_ref, event.ts, request.tablet,
         totals.total_minor, stall.currency.code, receipt))
    tx.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, qty, unit_minor,"
        " amount_minor, tax_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(sale_id, n, ln.sku, ln.name, ln.qty, ln.unit_minor, ln.amount_minor,
          ln.tax_code) for n, ln in enumerate(totals.lines, 1)])
    tx.execute(
        "INSERT INTO payments (sale_id, method, amount_minor, tendered_minor,"
        " change_minor, status, seq) VALUES (?, 'cash', ?, ?, ?, 'approved', ?)",
        (sale_id, totals.total_minor, request.tendered_minor, change, event.seq))
    tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
        " VALUES (?, 0, 'queued', ?, ?)", (sale_id, event.seq, event.seq))
    return SaleOutcome(True, _new_sale_dict(data, event.seq, event.ts, "completed"))


def _new_sale_dict(data: dict[str, Any], seq: int, ts: str,
                   status: str) -> dict[str, Any]:
    """Shape a sale just journaled as the API returns it, without reading it back."""
    payment = data["payments"][0]
    return {
        "id": data["id"], "seq": seq, "client_ref": data["client_ref"],
        "created_at": ts, "tablet": data["tablet"], "total_minor": data["total_minor"],
        "currency": data["currency"], "status": status, "lines": data["lines"],
        "taxes": data["taxes"], "change_minor": data["change_minor"],
        "payments": [{"method": payment["method"],
                      "amount_minor": payment["amount_minor"],
                      "tendered_minor": payment["tendered_minor"],
                      "change_minor": data["change_minor"], "status": "approved"}],
    }


def _line_inputs(tx: Tx, lines: Sequence[tuple[str, int]]) -> list[LineInput]:
    skus = sorted({sku for sku, _ in lines})
    marks = ",".join("?" * len(skus))
    rows = tx.execute(
        f"SELECT sku, name, variant, price_minor, tax_class, active FROM products"
        f" WHERE sku IN ({marks})", skus).fetchall()
    products = {row[0]: row for row in rows}
    inputs = []
    for index, (sku, qty) in enumerate(lines):
        product = products.get(sku)
        if product is None or not product[5]:
            raise InputError(f"unknown or inactive product: {sku!r}",
                             field=f"lines[{index}].sku")
        name = f"{product[1]} ({product[2]})" if product[2] else product[1]
        inputs.append(LineInput(sku=sku, name=name, qty=qty, unit_minor=product[3],
                                tax_class=product[4]))
    return inputs


def _event_body(sale_id: str, request: SaleRequest, totals: SaleTotals, change: int,
                stall: StallConfig) -> dict[str, Any]:
    return {
        "id": sale_id,
        "client_ref": request.client_ref,
        "tablet": request.tablet,
        "currency": stall.currency.code,
        "pricing": stall.pricing,
        "lines": [{"sku": ln.sku, "name": ln.name, "qty": ln.qty,
                   "unit_minor": ln.unit_minor, "amount_minor": ln.amount_minor,
                   "tax_code": ln.tax_code} for ln in totals.lines],
        "taxes": [{"code": t.code, "label": t.label, "rate_bp": t.rate_bp,
                   "net_minor": t.net_minor, "tax_minor": t.tax_minor,
                   "gross_minor": t.gross_minor} for t in totals.taxes],
        "total_minor": totals.total_minor,
        "payments": [{"method": "cash", "amount_minor": totals.total_minor,
                      "tendered_minor": request.tendered_minor}],
        "change_minor": change,
        "header": [stall.name, stall.address, _vat_line(stall)],
        "footer": [stall.receipt_footer],
        "local_time": datetime.now().astimezone().strftime("%d.%m.%Y %H:%M"),
    }


def _vat_line(stall: StallConfig) -> str:
    return f"USt-IdNr. {stall.vat_id}" if stall.vat_id else ""


def _receipt_record(data: dict[str, Any], seq: int) -> dict[str, Any]:
    keep = ("id", "currency", "lines", "taxes", "total_minor", "payments",
            "change_minor", "header", "footer", "local_time")
    return {"seq": seq, **{key: data[key] for key in keep}}


def receipt_from_record(record: dict[str, Any], *, reprint: bool = False) -> Receipt:
    """Rebuild the receipt document exactly as it was when the sale was made."""
    labels = {"cash": "Cash", "card": "Card"}
    return Receipt(
        header=tuple(line for line in record["header"] if line),
        sale_id=record["id"],
        seq=record["seq"],
        time_local=record["local_time"],
        currency=record["currency"],
        lines=tuple(ReceiptLine(ln["qty"], ln["name"], ln["unit_minor"],
                                ln["amount_minor"], ln["tax_code"])
                    for ln in record["lines"]),
        taxes=tuple(TaxRow(t["code"], t["label"], t["net_minor"], t["tax_minor"],
                           t["gross_minor"]) for t in record["taxes"]),
        total_minor=record["total_minor"],
        payments=tuple(PaymentRow(labels.get(p["method"], p["method"]),
                                  p.get("tendered_minor", p["amount_minor"]))
                       for p in record["payments"]),
        change_minor=record["change_minor"],
        footer=tuple(record["footer"]),
        reprint=reprint,
    )


def load_sale(conn: Any, sale_id: str) -> dict[str, Any]:
    """Read one sale with its lines and payments from the read models."""
    row = conn.execute(
        "SELECT id, seq, client_ref, created_at, tablet, total_minor, currency,"
        " status, receipt FROM sales WHERE id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id!r}")
    return sale_dict(row, conn)


def sale_dict(row: Sequence[Any], conn: Any) -> dict[str, Any]:
    """Shape a sales row (plus its payment) as the API returns it."""
    payment = conn.execute(
        "SELECT method, amount_minor, tendered_minor, change_minor, status"
        " FROM payments WHERE sale_id = ? ORDER BY id", (row[0],)).fetchall()
    receipt = json.loads(row[8])
    return {
        "id": row[0], "seq": row[1], "client_ref": row[2], "created_at": row[3],
        "tablet": row[4], "total_minor": row[5], "currency": row[6],
        "status": row[7], "lines": receipt["lines"], "taxes": receipt["taxes"],
        "change_minor": receipt["change_minor"],
        "payments": [{"method": p[0], "amount_minor": p[1], "tendered_minor": p[2],
                      "change_minor": p[3], "status": p[4]} for p in payment],
    }
