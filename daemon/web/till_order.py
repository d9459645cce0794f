"""What the till's cart asks of the sale flow: options, quote and tenders.

The till prices its cart with ``checkout.price_order``, the same function
the sale is journaled with, so the total on the screen is the total charged:
line and sale discounts, own-container credits, deposit returns and the
climate contribution included. Form text is read here, strictly, into the
types the sale flow takes; every refusal is an ``InputError`` a cashier can
act on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from daemon.billing.cash import round_cash
from daemon.billing.discounts import Discount
from daemon.billing.packaging import PackagingType
from daemon.billing.pricing import PricedLine
from daemon.billing.tenders import Tender
from daemon.config import StallConfig
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR, Currency
from daemon.sales.checkout import Order, Product, price_order
from daemon.sales.service import MAX_QTY, SaleRequest
from daemon.sales.settings import BillingSettings
from daemon.web.cart import Cart

_LOG = logging.getLogger(__name__)
MAX_PERCENT_BP = 10_000
MAX_REF = 64
OTHER_TENDERS = {"voucher": "Voucher", "gift_card": "Gift card"}


@dataclass(frozen=True, slots=True)
class TillQuote:
    """The cart priced as its sale will be: what the till and displays show."""

    lines: tuple[PricedLine, ...]  # the goods, one per cart line, before discounts
    line_discounts: tuple[int, ...]  # what each line's own discount takes off
    extra: tuple[tuple[str, int], ...]  # fees, deposits, credits, contribution
    sale_discount_minor: int
    total_minor: int
    cash_due_minor: int  # the total in cash, rounded by the stall's rule

    @property
    def rounding_minor(self) -> int:
        """Return the cash rounding line of an all-cash payment."""
        return self.cash_due_minor - self.total_minor


def cart_order(cart: Cart, tenders: tuple[Tender, ...]) -> Order:
    """Return the order a cart asks for, paid by tenders."""
    lines = list(cart.lines.values())
    return Order(
        tuple((ln.sku, ln.qty) for ln in lines), tenders,
        tuple((i, ln.discount) for i, ln in enumerate(lines) if ln.discount),
        frozenset(i for i, ln in enumerate(lines) if ln.own_container),
        cart.discount, tuple(sorted(cart.deposit_returns.items())),
        cart.contribution)


def cart_sale(cart: Cart, tablet: str, tenders: tuple[Tender, ...]) -> SaleRequest:
    """Return the sale request of a cart, idempotent by its client_ref."""
    order = cart_order(cart, tenders)
    return SaleRequest(cart.client_ref, order.lines, tablet=tablet, tenders=tenders,
                       line_discounts=order.line_discounts,
                       own_container=order.own_container,
                       sale_discount=order.sale_discount,
                       deposit_returns=order.deposit_returns,
                       contribution=order.contribution)


def quote(cart: Cart, products: Mapping[str, Product], stall: StallConfig,
          billing: BillingSettings) -> TillQuote:
    """Price a cart exactly as its cash sale will be priced."""
    try:
        order = cart_order(cart, (Tender("cash", MAX_AMOUNT_MINOR),))
        priced = price_order(order, products, stall, billing)
    except InputError as err:
        if err.field != "payment":
            raise
        order = cart_order(cart, (Tender("cash", 0),))  # a payout takes no cash
        priced = price_order(order, products, stall, billing)
    count = len(order.lines)
    goods = priced.sale.lines[:count]
    extra = tuple((d.line.name, d.paid_minor) for d in priced.sale.lines[count:])
    return TillQuote(tuple(d.line for d in goods),
                     tuple(d.line_discount_minor for d in goods), extra,
                     priced.sale.sale_discount_minor, priced.sale.total_minor,
                     priced.settlement.payments[-1].amount_minor)


def credit_types(billing: BillingSettings) -> dict[str, PackagingType]:
    """Return the packaging types that give a credit for the customer's own."""
    return {key: kind for key, kind in billing.packaging.items()
            if kind.own_container_credit_minor}


def deposit_types(billing: BillingSettings) -> dict[str, PackagingType]:
    """Return the packaging types that carry a deposit to hand back."""
    return {key: kind for key, kind in billing.packaging.items()
            if kind.deposit_minor}


def parse_amount(text: str, currency: Currency, what: str) -> int:
    """Parse a typed amount above zero in the stall currency, naming the field."""
    try:
        value = currency.parse(text.strip())
    except InputError as err:
        raise InputError(f"{what}: {err.detail}", field=what) from err
    if value <= 0:
        raise InputError(f"{what} must be more than zero", field=what)
    return value


def parse_percent(text: str, what: str) -> int:
    """Parse '10', '12,5' or '7.25' percent into basis points (1 % = 100 bp)."""
    text = text.strip().removesuffix("%").strip().replace(",", ".")
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if not (digits.isascii() and digits.isdigit()) or not whole or len(frac) > 2 \
            or len(whole) > 3:
        raise InputError(f"{what}: type a percent such as 10 or 12,5", field=what)
    value = int(whole) * 100 + int(frac.ljust(2, "0") or 0)
    if not 0 < value <= MAX_PERCENT_BP:
        raise InputError(f"{what} must be more than 0 and at most 100 %", field=what)
    return value


def parse_discount(value: str, kind: str, currency: Currency,
                   what: str) -> Discount:
    """Return a discount from a typed value and its kind (amount or percent)."""
    if kind == "percent":
        return Discount("percent", parse_percent(value, what), "")
    if kind == "amount":
        return Discount("amount", parse_amount(value, currency, what), "")
    raise InputError(f"{what}: choose amount or percent", field=what)


def parse_units(text: str, what: str, top: int = MAX_QTY) -> int:
    """Parse a typed number of units from 0 to top; empty is 0."""
    text = text.strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or int(text[:6]) > top:
        raise InputError(f"{what} must be a whole number from 0 to {top}",
                         field=what)
    return int(text)


def parse_ref(text: str, label: str) -> str:
    """Return a voucher or gift card number as typed, checked for sanity."""
    ref = text.strip()
    if not ref:
        raise InputError(f"type the {label.lower()} number", field="ref")
    if len(ref) > MAX_REF or not ref.isprintable():
        raise InputError(f"the {label.lower()} number must be at most {MAX_REF} "
                         "printable characters", field="ref")
    return ref


def other_tenders(method: str, ref: str, amount_minor: int | None,
                  cash: int | None, total_minor: int) -> tuple[Tender, ...]:
    """Return a voucher or gift card tender, plus cash when it pays the rest."""
    label = OTHER_TENDERS.get(method)
    if label is None:
        raise InputError("choose voucher or gift card", field="method")
    amount = total_minor if amount_minor is None else amount_minor
    tender = Tender(method, amount, parse_ref(ref, label))  # type: ignore[arg-type]
    if amount >= total_minor:
        return (tender,)
    if cash is None:
        raise InputError(f"the {label.lower()} pays part of the total: type the "
                         "cash given for the rest, or tap Exact", field="tendered")
    return (tender, Tender("cash", cash))


def cash_due(total_minor: int, paid_minor: int, billing: BillingSettings) -> int:
    """Return what cash must pay after other tenders, rounded by the stall's rule."""
    return round_cash(max(total_minor - paid_minor, 0), billing.cash)
