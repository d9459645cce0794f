"""Ring up a sale inside one journal transaction, idempotent by client_ref.

The sale is priced, discounted, estimated and settled by ``checkout``; this
module reads the products, journals one ``sale.completed`` event and updates
the read models (sales, sale_lines, payments, print_jobs) in the same
transaction, so a 2xx means all of it is on disk.

Card hook (issue 3): cash, voucher and gift card settle on the spot, so a sale
of those is ``completed`` at once. A card tender will not: the terminal
integration journals a ``payment.intent`` (payment row ``pending``) with the
sale as ``pending`` *before* asking the terminal, then a ``payment.approved``,
``payment.declined`` or ``payment.unknown`` event moves the row, and the sale
becomes ``completed`` (event ``sale.completed``) only when every tender is
approved. ``SaleRequest.tenders`` already carries ``card`` tenders and
``PAYMENT_STATES`` names the states; until then the API refuses card tenders.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.billing.carbon import CarbonEstimate, estimate_body
from daemon.billing.discounts import Discount
from daemon.billing.tenders import Tender
from daemon.config import StallConfig
from daemon.errors import NotFoundError
from daemon.journal.store import Tx
from daemon.ops.clock import CLOCK
from daemon.sales import giftcards, receipt_store
from daemon.sales.checkout import Order, PricedSale, Product, price_order
from daemon.sales.productcache import cached_products
from daemon.sales.receipt import PaymentRow, Receipt, ReceiptLine, TaxRow
from daemon.sales.receipt_store import carbon_summary
from daemon.sales.settings import BillingSettings
from daemon.trust.excerpt import sale_excerpt

MAX_LINES = 200
MAX_QTY = 9999
PAYMENT_STATES = ("pending", "approved", "declined", "unknown")
TENDER_LABELS = {"cash": "Cash", "card": "Card", "voucher": "Voucher",
                 "gift_card": "Gift card"}
_NO_BILLING = BillingSettings()


@dataclass(frozen=True, slots=True)
class SaleRequest:
    """A checked request to sell lines; without tenders, cash of tendered_minor."""

    client_ref: str
    lines: tuple[tuple[str, int], ...]
    tendered_minor: int = 0
    tablet: str = ""
    tenders: tuple[Tender, ...] = ()
    line_discounts: tuple[tuple[int, Discount], ...] = ()
    own_container: frozenset[int] = frozenset()
    sale_discount: Discount | None = None
    deposit_returns: tuple[tuple[str, int], ...] = ()
    contribution: bool = False

    def order(self) -> Order:
        """Return the order the pricing flow takes."""
        tenders = self.tenders or (Tender("cash", self.tendered_minor),)
        return Order(self.lines, tenders, self.line_discounts, self.own_container,
                     self.sale_discount, self.deposit_returns, self.contribution)


class PriceHook(Protocol):
    """Re-prices products inside the sale's transaction (live prices, #8)."""

    def apply(self, tx: Tx, request: SaleRequest, products: dict[str, Product]
              ) -> tuple[dict[str, Product], dict[str, Any]]:
        """Return the products to price with, and a part for the sale event."""
        ...


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    """The sale as journaled; created is False when client_ref was seen before."""

    created: bool
    sale: dict[str, Any]


def create_sale(tx: Tx, request: SaleRequest, stall: StallConfig,
                billing: BillingSettings = _NO_BILLING,
                prices: PriceHook | None = None) -> SaleOutcome:
    """Journal a sale and queue its receipt; return the first sale on retry.

    ``prices`` (daemon.live) may swap in live prices and count flash caps in
    this same transaction; its part (stream, pins) goes into the event.
    """
    existing = tx.execute("SELECT id FROM sales WHERE client_ref = ?",
                          (request.client_ref,)).fetchone()
    if existing:
        return SaleOutcome(False, load_sale(tx.conn, existing[0]))
    products = cached_products(tx, [sku for sku, _ in request.lines],
                               read_products)
    gift = giftcards.plan_sale(tx, request, stall.currency)  # codes masked
    request = gift.request
    part: dict[str, Any] = {}
    if prices is not None:
        products, part = prices.apply(tx, request, products)
    priced = price_order(request.order(), products, stall, billing)
    giftcards.issue_cards(gift, priced, request.lines, products)
    sale_id = new_sale_id(tx)
    data = {**event_body(sale_id, request, priced, stall, billing), **part,
            **gift.event_part()}
    if CLOCK.unsynced():  # the time on this sale may be wrong (#7)
        data["clock_synced"] = False
    event = tx.append("sale.completed", data)
    stored = {"excerpt": sale_excerpt(tx, stall.stall_id, event)}
    giftcards.apply_sale(tx, gift, data, event.seq)
    _write_read_models(tx, data, event.seq, event.ts, stored)
    return SaleOutcome(True, {**_new_sale_dict(data, priced.carbon, event.seq,
                                               event.ts),
                              **giftcards.sale_answer(gift)})


def new_sale_id(tx: Tx) -> str:
    """Return a new sale id: the next seq in hex, then 24 random bits.

    Ids that grow with the journal keep the sales indexes appending at their
    right edge, one page per commit instead of a random one (fewer bytes written
    to the SD card); the random tail keeps ids from being guessed in sequence.
    """
    return f"{tx.next_seq:010x}{_random_tail()}"


_TAILS: list[str] = []  # random id tails, drawn 1024 at a time
_TAILS_PER_DRAW = 1024


def _random_tail() -> str:
    """Return 24 random bits in hex: one os.urandom call per 1024 sales, not
    a system call (and a GIL hand-over from the writer) per sale."""
    if not _TAILS:
        raw = secrets.token_hex(3 * _TAILS_PER_DRAW)
        _TAILS.extend(raw[i:i + 6] for i in range(0, len(raw), 6))
    return _TAILS.pop()


def insert_sale_rows(tx: Tx, data: dict[str, Any], seq: int, ts: str,
                     stored: dict[str, Any], status: str) -> None:
    """Insert a sale's row and its lines (cash sales and card sales alike).

    ``stored`` is what the receipt needs beyond the event (``receipt_store``):
    the QR excerpt of a completed sale, nothing yet for a pending one.
    """
    sale_id = data["id"]
    tx.execute(
        "INSERT INTO sales (id, seq, client_ref, created_at, tablet, total_minor,"
        " currency, status, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sale_id, seq, data["client_ref"], ts, data["tablet"], data["total_minor"],
         data["currency"], status, receipt_store.encode(stored)))
    tx.executemany(
        "INSERT INTO sale_lines (sale_id, line_no, sku, name, qty, unit_minor,"
        " amount_minor, tax_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(sale_id, n, ln["sku"], ln["name"], ln["qty"], ln["unit_minor"],
          ln["amount_minor"], ln["tax_code"]) for n, ln in enumerate(data["lines"], 1)])


def _write_read_models(tx: Tx, data: dict[str, Any], seq: int, ts: str,
                       stored: dict[str, Any]) -> None:
    """Insert the sale, its lines, payments and print job for one event."""
    sale_id = data["id"]
    insert_sale_rows(tx, data, seq, ts, stored, "completed")
    tx.executemany(
        "INSERT INTO payments (sale_id, method, amount_minor, tendered_minor,"
        " change_minor, status, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(sale_id, p["method"], p["amount_minor"], p["tendered_minor"],
          data["change_minor"] if p["method"] == "cash" else 0, p["status"], seq)
         for p in data["payments"]])
    tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
        " VALUES (?, 0, 'queued', ?, ?)", (sale_id, seq, seq))


def read_products(conn: Any, skus: Sequence[str]) -> dict[str, Product]:
    """Return the active products among skus, with their billing references."""
    unique = sorted(set(skus))
    marks = ",".join("?" * len(unique))
    rows = conn.execute(
        "SELECT p.sku, p.name, p.variant, p.price_minor, p.tax_class, p.category,"
        " p.weight_g, p.gift_card, coalesce(b.packaging, ''),"
        " coalesce(b.carbon_factor, '') FROM products p"
        " LEFT JOIN product_billing b ON b.sku = p.sku"
        f" WHERE p.active = 1 AND p.sku IN ({marks})", unique).fetchall()
    return {row[0]: product_from_row(row) for row in rows}


def product_from_row(row: Sequence[Any]) -> Product:
    """Build a Product from (sku, name, variant, price, tax, category, ...)."""
    name = f"{row[1]} ({row[2]})" if row[2] else row[1]
    return Product(row[0], name, row[3], row[4], row[5], row[6], bool(row[7]),
                   row[8], row[9])


def event_body(sale_id: str, request: SaleRequest, priced: PricedSale,
               stall: StallConfig, billing: BillingSettings) -> dict[str, Any]:
    """Return the sale.completed body: everything a receipt and a refund need."""
    settlement = priced.settlement
    lines = _lines(priced)
    data: dict[str, Any] = {
        "id": sale_id,
        "client_ref": request.client_ref,
        "tablet": request.tablet,
        "currency": stall.currency.code,
        "pricing": stall.pricing,
        "lines": lines,
        "taxes": [{"code": t.code, "label": t.label, "rate_bp": t.rate_bp,
                   "net_minor": t.net_minor, "tax_minor": t.tax_minor,
                   "gross_minor": t.gross_minor} for t in priced.sale.taxes],
        "total_minor": settlement.total_minor,
        "rounding_minor": settlement.rounding_minor,
        "cash_rounding": [billing.cash.step_minor, billing.cash.mode],
        "payments": _payments(priced),
        "change_minor": settlement.change_minor,
        "fees": [{"kind": ln["kind"], "packaging": ln["packaging"], "qty": ln["qty"],
                  "amount_minor": ln["amount_minor"]}
                 for ln in lines if ln["kind"] in FEE_KINDS],
        "header": [stall.name, stall.address, _vat_line(stall)],
        "footer": [stall.receipt_footer],
        # time.strftime: the same local time as datetime.now().astimezone(),
        # without building a timezone object per sale (a tenth of the cost)
        "local_time": time.strftime("%d.%m.%Y %H:%M"),
    }
    data.update(_optional_parts(request, priced, billing))
    return data


FEE_KINDS = ("fee", "deposit", "credit", "deposit-return")


def _lines(priced: PricedSale) -> list[dict[str, Any]]:
    """Return the sale's lines as journaled, with kind and what was paid."""
    return [{"sku": d.line.sku, "name": d.line.name, "qty": d.line.qty,
             "unit_minor": d.line.unit_minor, "amount_minor": d.line.amount_minor,
             "tax_code": d.line.tax_code, "kind": kind, "packaging": pack,
             "line_discount_minor": d.line_discount_minor,
             "sale_discount_minor": d.sale_discount_minor,
             "paid_minor": d.paid_minor}
            for d, kind, pack in zip(priced.sale.lines, priced.kinds,
                                     priced.packaging, strict=True)]


def _payments(priced: PricedSale) -> list[dict[str, Any]]:
    """Return the applied tenders; cash with what was handed over."""
    settlement = priced.settlement
    return [{"method": p.method, "amount_minor": p.amount_minor,
             "tendered_minor": settlement.cash_tendered_minor
             if p.method == "cash" else p.amount_minor,
             "ref": p.ref, "status": "approved"} for p in settlement.payments]


def _optional_parts(request: SaleRequest, priced: PricedSale,
                    billing: BillingSettings) -> dict[str, Any]:
    """Return the discount, carbon and contribution parts the sale has."""
    out: dict[str, Any] = {}
    sale = priced.sale
    if request.sale_discount is not None:
        out["sale_discount"] = {"label": request.sale_discount.label,
                                "amount_minor": sale.sale_discount_minor,
                                "by_code": [list(x) for x in
                                            sale.sale_discount_by_code]}
    if priced.carbon is not None and billing.carbon is not None:
        out["carbon"] = {"record": priced.carbon_record,
                         "estimate": estimate_body(priced.carbon),
                         "flags": [list(x) for x in priced.flags],
                         "methodology_url": billing.carbon.methodology_url}
    if priced.contribution_minor and billing.contribution is not None:
        out["contribution"] = {
            "project": billing.contribution.project,
            "price_per_kg_minor": billing.contribution.price_per_kg_minor,
            "amount_minor": priced.contribution_minor}
    return out


def _vat_line(stall: StallConfig) -> str:
    return f"USt-IdNr. {stall.vat_id}" if stall.vat_id else ""


def receipt_from_record(record: dict[str, Any], *, reprint: bool = False) -> Receipt:
    """Rebuild the receipt document exactly as it was when the sale was made."""
    discount = record.get("sale_discount") or {}
    return Receipt(
        header=tuple(line for line in record["header"] if line),
        sale_id=record["id"],
        seq=record["seq"],
        time_local=record["local_time"],
        currency=record["currency"],
        lines=tuple(ReceiptLine(ln["qty"], ln["name"], ln["unit_minor"],
                                ln["amount_minor"], ln["tax_code"],
                                ln.get("line_discount_minor", 0))
                    for ln in record["lines"]),
        taxes=tuple(TaxRow(t["code"], t["label"], t["net_minor"], t["tax_minor"],
                           t["gross_minor"]) for t in record["taxes"]),
        total_minor=record["total_minor"],
        payments=tuple(_payment_row(p) for p in record["payments"]),
        change_minor=record["change_minor"],
        footer=tuple(record["footer"]),
        reprint=reprint,
        sale_discount_minor=discount.get("amount_minor", 0),
        sale_discount_label=discount.get("label", ""),
        rounding_minor=record.get("rounding_minor", 0),
        carbon=tuple(record.get("carbon_lines", ())),
        methodology_url=record.get("methodology_url", ""),
        qr=record.get("excerpt", ""),
        terminal_lines=tuple(record.get("terminal_lines", ())),
        notes=tuple(record.get("notes", ())),  # issued gift card codes
    )


def _payment_row(payment: dict[str, Any]) -> PaymentRow:
    """Label a tender for the receipt; a voucher shows its last four characters."""
    label = TENDER_LABELS.get(payment["method"], payment["method"])
    ref = payment.get("ref", "")
    if ref and payment["method"] != "cash":
        label = f"{label} ...{ref[-4:]}"
    return PaymentRow(label, payment.get("tendered_minor", payment["amount_minor"]))


def load_sale(conn: Any, sale_id: str) -> dict[str, Any]:
    """Read one sale with its lines and payments from the read models."""
    row = conn.execute(
        "SELECT id, seq, client_ref, created_at, tablet, total_minor, currency,"
        " status, receipt, (SELECT body FROM events WHERE seq = sales.seq)"
        " FROM sales WHERE id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id!r}")
    return sale_dict(row, conn)


def _new_sale_dict(data: dict[str, Any], estimate: CarbonEstimate | None,
                   seq: int, ts: str) -> dict[str, Any]:
    """Shape a sale just journaled as the API returns it, without reading it back."""
    payments = [{"method": p["method"], "amount_minor": p["amount_minor"],
                 "tendered_minor": p["tendered_minor"],
                 "change_minor": data["change_minor"] if p["method"] == "cash"
                 else 0, "status": p["status"]} for p in data["payments"]]
    head = {"id": data["id"], "seq": seq, "client_ref": data["client_ref"],
            "created_at": ts, "tablet": data["tablet"],
            "total_minor": data["total_minor"], "currency": data["currency"],
            "status": "completed"}
    carbon = data.get("carbon")
    summary = (carbon_summary(estimate, carbon["flags"])
               if carbon is not None and estimate is not None else None)
    return {**head, **_record_part(data), "carbon": summary, "payments": payments}


def _record_part(record: dict[str, Any]) -> dict[str, Any]:
    """Return the sale fields that come from its receipt record."""
    return {"lines": record["lines"], "taxes": record["taxes"],
            "change_minor": record["change_minor"],
            "rounding_minor": record.get("rounding_minor", 0),
            "sale_discount": record.get("sale_discount"),
            "carbon": record.get("carbon")}


def sale_dict(row: Sequence[Any], conn: Any) -> dict[str, Any]:
    """Shape a sales row (plus its payments) as the API returns it.

    The row's columns: id, seq, client_ref, created_at, tablet, total_minor,
    currency, status, receipt and the body of the event at its seq.
    """
    payment = conn.execute(
        "SELECT method, amount_minor, tendered_minor, change_minor, status"
        " FROM payments WHERE sale_id = ? ORDER BY id", (row[0],)).fetchall()
    receipt = receipt_store.record_of(row[8], row[1], row[9])
    return {
        "id": row[0], "seq": row[1], "client_ref": row[2], "created_at": row[3],
        "tablet": row[4], "total_minor": row[5], "currency": row[6],
        "status": row[7], **_record_part(receipt),
        "payments": [{"method": p[0], "amount_minor": p[1], "tendered_minor": p[2],
                      "change_minor": p[3], "status": p[4]} for p in payment],
    }

