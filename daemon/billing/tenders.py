"""Settle a sale over split tenders: cash, card, voucher and gift card.

Non-cash tenders are applied first at their exact amounts; cash pays what is
left, rounded by the stall's cash rounding. So card 10,00 + cash for the rest
of 14,68 collects 4,70 in cash (rounding line +0,02) and the card stays 10,00.
A non-cash tender may not exceed what is still due: a card, voucher or gift
card gives no change, only cash does.

A sale whose total is negative is a payout, not a payment: tender amounts are
then negative (money leaving the stall), cash is paid out rounded like a
payment; its cash tender carries amount 0 (nothing is handed over).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from daemon.billing.cash import CashRounding, round_cash
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR, Currency

TenderMethod = Literal["cash", "card", "voucher", "gift_card"]
TENDER_METHODS: tuple[str, ...] = get_args(TenderMethod)


@dataclass(frozen=True, slots=True)
class Tender:
    """A tender as offered: for cash, the amount handed over; else the charge."""

    method: TenderMethod
    amount_minor: int
    ref: str = ""  # voucher or gift card number, terminal receipt no.; never a PAN


@dataclass(frozen=True, slots=True)
class Payment:
    """A tender as applied to the sale; cash is the rounded amount kept."""

    method: TenderMethod
    amount_minor: int
    ref: str = ""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a sale was paid; total + rounding = the sum of the payments."""

    total_minor: int
    rounding_minor: int
    payments: tuple[Payment, ...]
    cash_tendered_minor: int
    change_minor: int

    @property
    def collected_minor(self) -> int:
        """Return what the stall actually took (negative for a payout)."""
        return self.total_minor + self.rounding_minor

    @property
    def payout(self) -> bool:
        """Return True when money leaves the stall."""
        return self.total_minor < 0


def settle(
    total_minor: int,
    tenders: Sequence[Tender],
    *,
    rule: CashRounding,
    currency: Currency,
) -> Settlement:
    """Apply the tenders to a sale total; cash pays the rest, rounded."""
    for tender in tenders:
        _check_tender(tender)
    sign = -1 if total_minor < 0 else 1
    non_cash = [t for t in tenders if t.method != "cash"]
    cash = [t for t in tenders if t.method == "cash"]
    if len(cash) > 1:
        raise InputError("give cash as one tender", field="payment")

    payments, rest = _apply_non_cash(total_minor, sign, non_cash, currency)
    if not cash:
        # Without cash nothing is rounded: card and vouchers must meet the total.
        if rest:
            due = currency.format(rest)
            raise InputError(f"{due} still due: add a tender", field="payment")
        return Settlement(total_minor, 0, tuple(payments), 0, 0)

    cash_due = round_cash(rest, rule)
    change = _change(sign, cash_due, cash[0].amount_minor, currency)
    payments.append(Payment("cash", cash_due, cash[0].ref))
    return Settlement(
        total_minor, cash_due - rest, tuple(payments), cash[0].amount_minor, change
    )


def _apply_non_cash(
    total_minor: int, sign: int, tenders: list[Tender], currency: Currency
) -> tuple[list[Payment], int]:
    """Apply card, voucher and gift card tenders in order; return what is left."""
    payments: list[Payment] = []
    rest = total_minor
    for tender in tenders:
        amount = tender.amount_minor
        if amount == 0 or (amount > 0) != (sign > 0):
            kind = "a payout" if sign < 0 else "a payment"
            raise InputError(
                f"{tender.method} amount {currency.format(amount)} has the "
                f"wrong sign for {kind}",
                field="payment",
            )
        if abs(amount) > abs(rest):
            raise InputError(
                f"{tender.method} amount {currency.format(abs(amount))} exceeds "
                f"the {currency.format(abs(rest))} "
                f"still due; only cash gives change",
                field="payment",
            )
        payments.append(Payment(tender.method, amount, tender.ref))
        rest -= amount
    return payments, rest


def _change(sign: int, cash_due: int, tendered: int, currency: Currency) -> int:
    """Return the change for the cash handed over, or raise if it is short."""
    if sign < 0:
        if tendered:
            raise InputError("a payout takes no cash tendered", field="payment")
        return 0
    if tendered < cash_due:
        raise InputError(
            f"cash tendered {currency.format(tendered)} is less than the "
            f"{currency.format(cash_due)} due",
            field="tendered_minor",
        )
    return tendered - cash_due


def _check_tender(tender: Tender) -> None:
    """Refuse unknown methods and amounts that are not sane whole minor units."""
    if tender.method not in TENDER_METHODS:
        raise InputError(
            f"unknown tender {tender.method!r}; use one of {', '.join(TENDER_METHODS)}",
            field="payment",
        )
    amount = tender.amount_minor
    if type(amount) is not int or abs(amount) > MAX_AMOUNT_MINOR:
        raise InputError(
            f"{tender.method} amount must be whole minor units, not {amount!r}",
            field="payment",
        )
