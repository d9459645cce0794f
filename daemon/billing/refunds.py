"""Refunds that mirror what was actually paid, per line, tax rate and tender.

A refund is the difference between two cumulative states of the same sale:
everything refunded after it minus everything refunded before it. Each
cumulative figure is a fixed function of the units refunded so far, and at
"all units" it equals what the sale booked. So a sale's refunds, however
split, add up to exactly what was paid and never more:

- **Line**: n of qty units are worth paid x n / qty, rounded ``half_up``
  (paid is after discounts). A 9,99 line refunds 9,99; three refunds of one
  unit of a 10,00 line of three give 3,33 + 3,34 + 3,33.
- **Tax per rate**: the rate's booked tax x refunded gross / booked gross,
  rounded ``half_up``; net = gross - tax.
- **Tenders**: refunded goods go back card first, then gift card, voucher and
  cash last, each up to what it paid, so a card payment never turns into
  cash. Cash paid out is the cash rounding of the cumulative cash part, capped
  at the cash actually taken, so rounded cash comes back with the last unit.

A refund must not push any tax rate, or the sale, past what was booked: a
deposit return line (negative) is refunded together with the item it came
back with, not left behind. A payout is not refunded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daemon.billing.cash import CashRounding, round_cash
from daemon.billing.discounts import DiscountedSale
from daemon.billing.pricing import TaxTotal
from daemon.billing.rounding import div_round
from daemon.billing.tenders import Payment, Settlement, TenderMethod
from daemon.errors import ConflictError, InputError
from daemon.money import Currency

REFUND_ORDER: tuple[TenderMethod, ...] = ("card", "gift_card", "voucher", "cash")


@dataclass(frozen=True, slots=True)
class PaidLine:
    """A sold line as booked: paid_minor is after all discounts."""

    sku: str
    name: str
    qty: int
    paid_minor: int
    tax_code: str


@dataclass(frozen=True, slots=True)
class PaidSale:
    """What a refund mirrors: lines, booked taxes, settlement and cash rule."""

    lines: tuple[PaidLine, ...]
    taxes: tuple[TaxTotal, ...]
    settlement: Settlement
    rule: CashRounding


@dataclass(frozen=True, slots=True)
class RefundLine:
    """Units of one sold line given back, and the money for them."""

    index: int
    sku: str
    name: str
    qty: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Refund:
    """One refund: amounts are positive when money goes back to the customer."""

    lines: tuple[RefundLine, ...]
    taxes: tuple[TaxTotal, ...]
    goods_minor: int
    rounding_minor: int
    tenders: tuple[Payment, ...]
    total_minor: int


@dataclass(frozen=True, slots=True)
class _State:
    """Cumulative refunded amounts for some number of units per line."""

    lines: tuple[int, ...]
    gross_by_code: dict[str, int]
    tax_by_code: dict[str, int]
    tenders: tuple[int, ...]


def paid_sale(
    sale: DiscountedSale, settlement: Settlement, rule: CashRounding
) -> PaidSale:
    """Return the record a later refund needs from a priced and settled sale."""
    if sale.total_minor != settlement.total_minor:
        raise ValueError("settlement is for a different total than the sale")
    lines = tuple(
        PaidLine(d.line.sku, d.line.name, d.line.qty, d.paid_minor, d.line.tax_code)
        for d in sale.lines
    )
    return PaidSale(lines, sale.taxes, settlement, rule)


def remaining_units(sale: PaidSale, refunded_before: Sequence[int]) -> dict[int, int]:
    """Return the units per line not yet refunded (a full refund takes these)."""
    _check_before(sale, refunded_before)
    return {
        i: abs(line.qty) - done
        for i, (line, done) in enumerate(zip(sale.lines, refunded_before, strict=True))
        if abs(line.qty) > done
    }


def refund(
    sale: PaidSale,
    *,
    refunded_before: Sequence[int],
    units: Mapping[int, int],
    currency: Currency,
) -> Refund:
    """Refund units of lines, given the units per line refunded before."""
    if sale.settlement.payout:
        raise InputError("a payout is not refunded", field="refund")
    _check_before(sale, refunded_before)
    after = _units_after(sale, refunded_before, units)

    old, new = _state(sale, refunded_before), _state(sale, after)
    _check_bounds(sale, new, currency)
    lines = _refund_lines(sale, refunded_before, after, old, new)
    goods = sum(x.amount_minor for x in lines)
    if goods < 0:
        raise InputError("this refund would take money back", field="refund")

    tenders = _refund_tenders(sale, old, new)
    total = sum(t.amount_minor for t in tenders)
    return Refund(
        lines, _refund_taxes(sale, old, new), goods, total - goods, tenders, total
    )


def _units_after(
    sale: PaidSale, before: Sequence[int], units: Mapping[int, int]
) -> tuple[int, ...]:
    """Return units refunded per line after this refund, or raise."""
    after = list(before)
    for i, n in units.items():
        if not 0 <= i < len(sale.lines):
            raise InputError(f"the sale has no line {i}", field="refund")
        if type(n) is not int or n < 1:
            raise InputError(f"refund at least one unit of line {i}", field="refund")
        left = abs(sale.lines[i].qty) - before[i]
        if n > left:
            # Another tablet may have refunded it a moment ago: a conflict (409).
            raise ConflictError(
                f"line {i} ({sale.lines[i].name}) has {left} unit(s) left to "
                f"refund, not {n}"
            )
        after[i] += n
    return tuple(after)


def _state(sale: PaidSale, units: Sequence[int]) -> _State:
    """Return the cumulative amounts refunded for units per line."""
    lines = tuple(
        div_round(line.paid_minor * n, abs(line.qty), "half_up")
        for line, n in zip(sale.lines, units, strict=True)
    )
    gross: dict[str, int] = {t.code: 0 for t in sale.taxes}
    for line, amount in zip(sale.lines, lines, strict=True):
        gross[line.tax_code] += amount
    tax = {
        t.code: div_round(t.tax_minor * gross[t.code], t.gross_minor, "half_up")
        if t.gross_minor
        else 0
        for t in sale.taxes
    }
    return _State(lines, gross, tax, _tender_shares(sale, sum(lines)))


def _tender_shares(sale: PaidSale, goods_minor: int) -> tuple[int, ...]:
    """Spread cumulative refunded goods over the payments in refund order."""
    settlement = sale.settlement
    shares = [0] * len(settlement.payments)
    left = goods_minor
    for i in _refund_order(settlement.payments):
        payment = settlement.payments[i]
        cap = payment.amount_minor
        if payment.method == "cash":
            cap -= settlement.rounding_minor  # the exact cash part of the goods
        shares[i] = max(0, min(left, cap))
        left -= shares[i]
        if payment.method == "cash":
            shares[i] = _cash_out(shares[i], cap, payment.amount_minor, sale.rule)
    return tuple(shares)


def _cash_out(goods_minor: int, goods_cap: int, paid: int, rule: CashRounding) -> int:
    """Return the cumulative cash to pay out for a cumulative cash part."""
    if goods_minor == goods_cap:
        return paid  # the last unit brings the rounding line back with it
    return min(round_cash(goods_minor, rule), paid)


def _refund_order(payments: Sequence[Payment]) -> list[int]:
    """Return payment positions in the order refunds fill them."""
    return sorted(
        range(len(payments)),
        key=lambda i: (REFUND_ORDER.index(payments[i].method), i),
    )


def _check_before(sale: PaidSale, before: Sequence[int]) -> None:
    """Refuse a refunded-before state that does not fit the sale."""
    if len(before) != len(sale.lines) or any(
        not 0 <= n <= abs(line.qty) for line, n in zip(sale.lines, before, strict=True)
    ):
        raise ValueError("refunded_before does not fit the sale's lines")


def _check_bounds(sale: PaidSale, new: _State, currency: Currency) -> None:
    """Refuse a state that refunds more than was booked per rate or in all."""
    for tax in sale.taxes:
        low, high = sorted((0, tax.gross_minor))
        if not low <= new.gross_by_code[tax.code] <= high:
            raise InputError(
                f"this refund would return more at tax {tax.code} than was "
                f"paid there; refund deposit returns with their items",
                field="refund",
            )
    goods = sum(new.lines)
    if goods > sale.settlement.total_minor:
        paid = currency.format(sale.settlement.total_minor)
        raise InputError(
            f"refunds would reach {currency.format(goods)} of the {paid} paid; "
            f"refund deposit returns with their items",
            field="refund",
        )


def _refund_lines(
    sale: PaidSale,
    before: Sequence[int],
    after: Sequence[int],
    old: _State,
    new: _State,
) -> tuple[RefundLine, ...]:
    """Return the lines this refund touches with their amounts."""
    return tuple(
        RefundLine(
            i, line.sku, line.name, after[i] - before[i], new.lines[i] - old.lines[i]
        )
        for i, line in enumerate(sale.lines)
        if after[i] != before[i]
    )


def _refund_taxes(sale: PaidSale, old: _State, new: _State) -> tuple[TaxTotal, ...]:
    """Return net, tax and gross refunded per rate (rates touched only)."""
    rows = []
    for t in sale.taxes:
        gross = new.gross_by_code[t.code] - old.gross_by_code[t.code]
        tax = new.tax_by_code[t.code] - old.tax_by_code[t.code]
        if gross or tax:
            rows.append(TaxTotal(t.code, t.label, t.rate_bp, gross - tax, tax, gross))
    return tuple(rows)


def _refund_tenders(sale: PaidSale, old: _State, new: _State) -> tuple[Payment, ...]:
    """Return what goes back per tender, in refund order, zeros left out."""
    payments = sale.settlement.payments
    return tuple(
        Payment(payments[i].method, new.tenders[i] - old.tenders[i], payments[i].ref)
        for i in _refund_order(payments)
        if new.tenders[i] != old.tenders[i]
    )
