"""A sale paid by card: pending until the terminal (or a person) settles it.

A card sale is priced by the sale flow of #4 (``price_order``, the same lines,
fees, discounts and carbon as for cash) and settled all by card, but journaled
here with its own transaction functions on the same read models:
``sale.pending`` (sale row ``pending``, card payment row ``pending``) and the
first ``payment.intent_created`` in one transaction;
then, in the transaction that journals the approval, ``sale.completed`` with
the whole sale body (so downstream sees one completed sale, as for cash), the
row moved to that event's seq and the receipt queued. A declined or aborted
attempt leaves the sale pending for another attempt, the rest in cash
(``pay_rest_in_cash``) or ``sale.cancelled``.

In a split (card + cash, card + voucher, card + gift card) the card pays its
exact amount and cash the rest, rounded by the stall's rule
(``tenders.settle``); every tender of the sale stays ``pending`` until the
card part is approved, so the drawer and the Z report count the cash only with
the completed sale. A gift card part is reserved: ``sale.pending`` takes it off
the card's balance (``giftcards.reserve``, 409 if it is not there), the
completion keeps it, ``sale.cancelled`` gives it back (``giftcards.release``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from daemon.billing import tenders
from daemon.billing.cash import CashRounding
from daemon.config import StallConfig
from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.canonical import parse_canonical
from daemon.journal.store import Event, Tx
from daemon.money import MAX_AMOUNT_MINOR, Currency
from daemon.payments import intents
from daemon.sales import giftcards, receipt_store
from daemon.sales.checkout import PricedSale, price_order
from daemon.sales.service import (
    SaleRequest,
    event_body,
    insert_sale_rows,
    new_sale_id,
    read_products,
)
from daemon.sales.settings import BillingSettings
from daemon.trust.excerpt import sale_excerpt

logger = logging.getLogger(__name__)


class CardPrices(Protocol):
    """The live-price step (daemon.live.pricing) as a card sale uses it (#8)."""

    def apply(self, tx: Tx, request: SaleRequest, products: dict[str, Any], *,
              completed: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the products to price with, and a part for the sale event."""
        ...


@dataclass(frozen=True, slots=True)
class CardSaleRequest:
    """A checked request to sell lines by card on one terminal."""

    sale: SaleRequest  # its tenders are ignored: the card pays the total
    terminal: str


@dataclass(frozen=True, slots=True)
class CardSaleOutcome:
    """The sale and its newest attempt; created is False on a retried request."""

    created: bool
    sale_id: str
    intent_id: str | None
    amount_minor: int = 0


def open_card_sale(tx: Tx, request: CardSaleRequest, stall: StallConfig,
                   billing: BillingSettings,
                   prices: CardPrices | None = None) -> CardSaleOutcome:
    """Journal a pending card sale and its first intent, idempotent by client_ref.

    ``prices`` (daemon.live) applies live prices and flash caps as for cash, in
    this transaction; its part (stream, pins) rides in ``sale.pending`` and so
    in the ``sale.completed`` the approval journals.
    """
    sale = request.sale
    row = tx.execute("SELECT id FROM sales WHERE client_ref = ?",
                     (sale.client_ref,)).fetchone()
    if row is not None:
        latest = intents.latest_for_sale(tx.conn, row[0])
        return CardSaleOutcome(False, row[0], latest["id"] if latest else None)
    intents.check_terminal_free(tx, request.terminal)
    products = read_products(tx.conn, [sku for sku, _ in sale.lines])
    giftcards.refuse_in_card_sale(sale, products)  # (#4) sold for cash only
    gift = giftcards.plan_sale(tx, sale, stall.currency)  # 409 if not there
    sale = gift.request  # gift card codes masked
    part: dict[str, Any] = {}
    if prices is not None:
        products, part = prices.apply(tx, sale, products, completed=False)
    priced = price_for_card(tx, sale, stall, billing, products)
    sale_id = new_sale_id(tx)
    data = {**event_body(sale_id, sale, priced, stall, billing), **part,
            **gift.event_part()}
    for payment in data["payments"]:
        payment["status"] = "pending"
    event = tx.append("sale.pending", data)
    giftcards.reserve(tx, gift, event.seq)  # held while the card is tried
    _insert_sale(tx, data, event.seq, event.ts, {})
    card = card_minor(data["payments"])
    intent_id = intents.create_intent(tx, sale_id, sale.client_ref, card,
                                      stall.currency.code, request.terminal)
    return CardSaleOutcome(True, sale_id, intent_id, card)


def card_minor(payments: Sequence[dict[str, Any]]) -> int:
    """Return the amount of a sale's card tender."""
    return next(p["amount_minor"] for p in payments if p["method"] == "card")


def new_attempt(tx: Tx, sale_id: str, terminal: str) -> tuple[str, int]:
    """Journal another attempt for a pending sale whose last one charged nothing."""
    row = tx.execute("SELECT s.status, s.client_ref, p.amount_minor, s.currency"
                     " FROM sales s JOIN payments p ON p.sale_id = s.id AND"
                     " p.method = 'card' WHERE s.id = ?", (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id[:40]!r}")
    if row[0] != "pending":
        raise ConflictError(f"sale {sale_id} is {row[0]}, not waiting for a payment")
    latest = intents.latest_for_sale(tx.conn, sale_id)
    if latest is not None and latest["outcome"] in ("pending", "unknown", "approved"):
        raise ConflictError(f"payment {latest['id']} of this sale is "
                            f"{latest['outcome']}; settle it first")
    _set_payment_status(tx, sale_id, "pending")
    return intents.create_intent(tx, sale_id, row[1], row[2], row[3], terminal), row[2]


def settle(tx: Tx, intent_id: str, outcome: str, result: dict[str, Any],
           lines: Sequence[str], print_terminal_lines: bool) -> dict[str, Any]:
    """Journal a terminal outcome and move the sale with it, in one transaction."""
    intent = intents.get_intent(tx.conn, intent_id)
    intents.record_outcome(tx, intent, outcome, result, list(lines))
    _follow(tx, intent, outcome, print_terminal_lines)
    return intents.get_intent(tx.conn, intent_id)


def resolve(tx: Tx, intent_id: str, outcome: str, by: str, how: str,
            result: dict[str, Any], print_terminal_lines: bool) -> dict[str, Any]:
    """Journal the resolution of an unknown intent and move the sale with it."""
    if outcome not in ("approved", "declined"):
        raise InputError("outcome must be approved or declined", field="outcome")
    intent = intents.get_intent(tx.conn, intent_id)
    intents.record_resolution(tx, intent, outcome, by, how, result)
    _follow(tx, intent, outcome, print_terminal_lines)
    return intents.get_intent(tx.conn, intent_id)


def cancel_sale(tx: Tx, sale_id: str, by: str,
                release: Callable[[Tx, dict[str, Any]], None] | None = None) -> None:
    """Cancel a pending card sale whose attempts charged nothing.

    ``release`` (daemon.live) gives the sale's units back to a flash cap; the
    gift card amounts its ``sale.pending`` reserved go back to their cards.
    """
    _, pending, latest = _refused_pending(tx, sale_id)
    back = giftcards.released(pending)
    event = tx.append("sale.cancelled", {
        "sale_id": sale_id, "by": by, "reason": f"card payment {latest['outcome']}",
        **back})
    giftcards.release(tx, back, event.seq)
    tx.execute("UPDATE sales SET status = 'cancelled' WHERE id = ?", (sale_id,))
    if release is not None:
        release(tx, pending)


def _refused_pending(tx: Tx, sale_id: str
                     ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return a pending card sale's receipt, its sale.pending data and its last
    payment attempt, which must have charged nothing (declined or aborted);
    else raise, so the customer is never charged twice."""
    row = tx.execute("SELECT s.status, s.receipt, e.body FROM sales AS s"
                     " JOIN events AS e ON e.seq = s.seq WHERE s.id = ?",
                     (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id[:40]!r}")
    latest = intents.latest_for_sale(tx.conn, sale_id)
    if row[0] != "pending" or latest is None:
        raise ConflictError(f"sale {sale_id} is {row[0]}, not a card sale waiting "
                            "for its payment")
    if latest["outcome"] not in ("declined", "aborted"):
        raise ConflictError(f"its card payment is {latest['outcome']}: settle it "
                            "first, so the customer is never charged twice")
    return row[1], dict(parse_canonical(bytes(row[2]))["data"]), latest


def pay_rest_in_cash(tx: Tx, sale_id: str, tendered_minor: int,
                     by: str) -> dict[str, Any]:
    """Complete a pending sale whose card was refused: cash pays the card's part."""
    receipt, data, latest = _refused_pending(tx, sale_id)
    data.update(_cash_settlement(data, tendered_minor), local_time=_local_time())
    data["replaced_card"] = {"intent_id": latest["id"], "by": by}
    event = tx.append("sale.completed", data)
    stored = {**receipt_store.stored_of(receipt), "excerpt": _excerpt(tx, event)}
    tx.execute("UPDATE sales SET seq = ?, created_at = ?, status = 'completed',"
               " receipt = ? WHERE id = ?",
               (event.seq, event.ts, receipt_store.encode(stored), sale_id))
    tx.execute("DELETE FROM payments WHERE sale_id = ?", (sale_id,))
    _insert_payments(tx, data, event.seq, "approved")
    tx.execute("INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
               " VALUES (?, 0, 'queued', ?, ?)", (sale_id, event.seq, event.seq))
    return data


def _cash_settlement(data: dict[str, Any], tendered_minor: int) -> dict[str, Any]:
    """Settle the sale again with its other tenders and cash for the rest."""
    kept = [tenders.Tender(p["method"], p["amount_minor"], p.get("ref", ""))
            for p in data["payments"] if p["method"] not in ("card", "cash")]
    step, mode = data["cash_rounding"]
    paid = tenders.settle(data["total_minor"],
                          (*kept, tenders.Tender("cash", tendered_minor)),
                          rule=CashRounding(step, mode),
                          currency=Currency.of(data["currency"]))
    payments = [{"method": p.method, "amount_minor": p.amount_minor,
                 "tendered_minor": paid.cash_tendered_minor if p.method == "cash"
                 else p.amount_minor, "ref": p.ref, "status": "approved"}
                for p in paid.payments]
    return {"payments": payments, "change_minor": paid.change_minor,
            "rounding_minor": paid.rounding_minor}


def _follow(tx: Tx, intent: dict[str, Any], outcome: str,
            print_terminal_lines: bool) -> None:
    """Complete the sale on approval; else mirror the outcome on its payment row."""
    if outcome == "approved":
        _complete(tx, intent, print_terminal_lines)
    else:
        _set_payment_status(tx, intent["sale_id"], intents.API_STATUS[outcome])


def _complete(tx: Tx, intent: dict[str, Any], print_terminal_lines: bool) -> None:
    """Journal sale.completed with the whole sale and queue its receipt."""
    sale_id = intent["sale_id"]
    row = tx.execute("SELECT seq, receipt FROM sales WHERE id = ? AND status ="
                     " 'pending'", (sale_id,)).fetchone()
    if row is None:
        raise ConflictError(f"sale {sale_id} is not pending: not completed twice")
    pending = tx.execute("SELECT body FROM events WHERE seq = ?", (row[0],))
    data = dict(parse_canonical(bytes(pending.fetchone()[0]))["data"])
    data["payments"] = [{**p, "status": "approved", "intent_id": intent["id"]}
                        for p in data["payments"]]
    data["local_time"] = _local_time()
    event = tx.append("sale.completed", data)
    stored = {**receipt_store.stored_of(row[1]), "excerpt": _excerpt(tx, event)}
    if print_terminal_lines:
        fresh = intents.get_intent(tx.conn, intent["id"])
        stored["terminal_lines"] = fresh["terminal_lines"]
    tx.execute("UPDATE sales SET seq = ?, created_at = ?, status = 'completed',"
               " receipt = ? WHERE id = ?",
               (event.seq, event.ts, receipt_store.encode(stored), sale_id))
    tx.execute("UPDATE payments SET status = 'approved', seq = ? WHERE sale_id = ?",
               (event.seq, sale_id))
    tx.execute("INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
               " VALUES (?, 0, 'queued', ?, ?)", (sale_id, event.seq, event.seq))


def _excerpt(tx: Tx, event: Event) -> str:
    """Return the signed QR excerpt of a sale.completed, as a cash sale carries.

    The signer holds the stall id it certifies its epochs for, the id a cash
    sale's excerpt carries ('' for an unsigned journal, as for cash).
    """
    signer = tx.signer
    return sale_excerpt(tx, signer.stall_id, event) if signer is not None else ""


def _set_payment_status(tx: Tx, sale_id: str, status: str) -> None:
    tx.execute("UPDATE payments SET status = ? WHERE sale_id = ? AND method = 'card'",
               (status, sale_id))


def billing_of(config: object) -> BillingSettings:
    """Return the stall's billing settings (none before #4's config keys exist)."""
    billing = getattr(config, "billing", None)
    return billing if isinstance(billing, BillingSettings) else BillingSettings()


def price_for_card(tx: Tx, sale: SaleRequest, stall: StallConfig,
                   billing: BillingSettings,
                   products: dict[str, Any] | None = None) -> PricedSale:
    """Price the order as a cash sale would be; settle by card, or by its split."""
    if products is None:
        products = read_products(tx.conn, [sku for sku, _ in sale.lines])
    if any(t.method == "card" for t in sale.tenders):
        return price_order(sale.order(), products, stall, billing)
    probe = replace(sale, tenders=(tenders.Tender("cash", MAX_AMOUNT_MINOR),))
    priced = price_order(probe.order(), products, stall, billing)
    total = priced.settlement.total_minor
    if total <= 0:
        raise InputError("a card payment needs a total above zero",
                         field="payment.method")
    card = tenders.settle(total, (tenders.Tender("card", total),),
                          rule=billing.cash, currency=stall.currency)
    return replace(priced, settlement=card)


def _insert_sale(tx: Tx, data: dict[str, Any], seq: int, ts: str,
                 record: dict[str, Any]) -> None:
    insert_sale_rows(tx, data, seq, ts, record, "pending")
    _insert_payments(tx, data, seq, "pending")


def _insert_payments(tx: Tx, data: dict[str, Any], seq: int, status: str) -> None:
    """Insert the sale's payment rows; cash carries the change given."""
    tx.executemany(
        "INSERT INTO payments (sale_id, method, amount_minor, tendered_minor,"
        " change_minor, status, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(data["id"], p["method"], p["amount_minor"], p["tendered_minor"],
          data["change_minor"] if p["method"] == "cash" else 0, status, seq)
         for p in data["payments"]])


def _local_time() -> str:
    return datetime.now().astimezone().strftime("%d.%m.%Y %H:%M")
