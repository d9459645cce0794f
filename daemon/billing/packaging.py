"""Packaging fees, deposits and own-container credits as sale lines.

Each packaging type (from config) may carry a fee (a single-use levy), a
deposit (paid now, returned as a negative line when the container comes back)
and a credit for a customer who brings their own container instead. The lines
produced here go into ``pricing.price_sale`` with the goods, so they are
taxed per their own tax class and rounded like any other line. Their amounts
are in the stall's pricing mode, like catalog prices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from daemon.billing.pricing import MAX_QTY, LineInput
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR


@dataclass(frozen=True, slots=True)
class PackagingType:
    """One packaging type: its fees, deposit, credit, and material for carbon."""

    key: str
    label: str
    fee_minor: int = 0
    fee_tax_class: str = "standard"
    deposit_minor: int = 0
    deposit_tax_class: str = "exempt"
    own_container_credit_minor: int = 0
    credit_tax_class: str = "standard"
    material: str = ""  # material factor key for the carbon estimate
    mass_g: int = 0

    def __post_init__(self) -> None:
        amounts = (self.fee_minor, self.deposit_minor, self.own_container_credit_minor)
        for amount in (*amounts, self.mass_g):
            if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT_MINOR:
                raise InputError(
                    f"packaging {self.key!r}: amounts and mass must be whole "
                    f"non-negative numbers, not {amount!r}",
                    field=f"packaging.{self.key}",
                )


class PackagedQty(NamedTuple):
    """How many sold units came in a packaging type, or in the customer's own."""

    packaging: str
    qty: int
    own_container: bool = False


def packaging_lines(
    items: Sequence[PackagedQty], types: Mapping[str, PackagingType]
) -> tuple[LineInput, ...]:
    """Return fee, deposit and own-container credit lines, one per type and kind."""
    taken: dict[str, int] = {}
    own: dict[str, int] = {}
    for item in items:
        _packaging(item.packaging, types)
        _check_qty(item.qty)
        counts = own if item.own_container else taken
        counts[item.packaging] = counts.get(item.packaging, 0) + item.qty

    lines: list[LineInput] = []
    for key in sorted(taken.keys() | own.keys()):
        kind = types[key]
        n, mine = taken.get(key, 0), own.get(key, 0)
        if n and kind.fee_minor:
            lines.append(_line("fee", kind, n, kind.fee_minor, kind.fee_tax_class))
        if n and kind.deposit_minor:
            lines.append(
                _line("deposit", kind, n, kind.deposit_minor, kind.deposit_tax_class)
            )
        if mine and kind.own_container_credit_minor:
            credit = -kind.own_container_credit_minor
            lines.append(_line("credit", kind, mine, credit, kind.credit_tax_class))
    return tuple(lines)


def deposit_return_line(
    key: str, qty: int, types: Mapping[str, PackagingType]
) -> LineInput:
    """Return the negative line for qty returned containers of a packaging type."""
    kind = _packaging(key, types)
    _check_qty(qty)
    if not kind.deposit_minor:
        raise InputError(f"packaging {key!r} carries no deposit", field="packaging")
    return LineInput(
        f"deposit-return:{key}",
        f"Deposit return {kind.label}",
        -qty,
        kind.deposit_minor,
        kind.deposit_tax_class,
    )


def _line(
    kind: str, packaging: PackagingType, qty: int, unit: int, tax_class: str
) -> LineInput:
    """Return one generated line; sku says what it is and for which packaging."""
    names = {"fee": "fee", "deposit": "deposit", "credit": "own container credit"}
    return LineInput(
        f"{kind}:{packaging.key}",
        f"{packaging.label} {names[kind]}",
        qty,
        unit,
        tax_class,
    )


def _packaging(key: str, types: Mapping[str, PackagingType]) -> PackagingType:
    """Return a packaging type, or raise InputError naming the unknown key."""
    try:
        return types[key]
    except KeyError:
        known = ", ".join(sorted(types)) or "none configured"
        raise InputError(
            f"unknown packaging type {key!r} (known: {known})", field="packaging"
        ) from None


def _check_qty(qty: int) -> None:
    """Refuse a quantity that is not a positive whole number in bounds."""
    if type(qty) is not int or not 0 < qty <= MAX_QTY:
        raise InputError(
            f"packaging quantity must be 1 to {MAX_QTY}, not {qty!r}", field="qty"
        )
