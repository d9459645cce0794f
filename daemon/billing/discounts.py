"""Discounts per line and per sale, allocated to tax rates and lines.

Rules, in the order they apply:

1. A **line discount** comes off that line's gross amount, so it lowers only
   the line's own rate. Percent: amount x percent, rounded ``half_up``.
2. A **sale discount** is computed once on the sale's base: the sum of the
   lines that are positive after their line discounts (a deposit return or
   other negative line is never discounted). Percent: base x percent, rounded
   ``half_up``; one rounding, so the printed discount is exactly what is taken.
3. The sale discount is **allocated to tax rates** in proportion to each rate's
   share of the base by the largest-remainder rule (ties to the lower tax
   code), then **within a rate to its lines** the same way (ties to the earlier
   line). The rate split depends only on per-rate totals, so entering the
   same goods as more or fewer lines never moves tax between rates; the line
   split is what a later refund of a single line gives back.
4. Tax per rate is recomputed on the discounted gross total of the rate, as in
   ``pricing.tax_totals``.

An amount discount is gross (what the customer pays less) in both pricing
modes, because lines are priced gross before discounts apply. A discount never
makes a line or the sale negative: a larger one is refused.

Lines the caller marks ``exempt`` (gift cards: a card is worth its face value
and is paid in full) take no discount: a line discount on one is refused
naming the line, and the sale discount's base leaves them out, so it is
allocated over the other lines only; with no other line it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from daemon.billing.pricing import (
    BP_ONE,
    PricedLine,
    SaleTotals,
    TaxRate,
    TaxTotal,
    tax_totals,
)
from daemon.billing.rounding import allocate, div_round
from daemon.errors import InputError
from daemon.money import Currency


@dataclass(frozen=True, slots=True)
class Discount:
    """An amount off (value in minor units) or a percent off (value in bp)."""

    kind: Literal["amount", "percent"]
    value: int
    label: str = ""


class DiscountedLine(NamedTuple):
    """A priced line with what was taken off it; paid_minor is what it costs."""

    line: PricedLine
    line_discount_minor: int
    sale_discount_minor: int
    paid_minor: int


@dataclass(frozen=True, slots=True)
class DiscountedSale:
    """A sale after discounts: taxes and total are on the discounted amounts."""

    lines: tuple[DiscountedLine, ...]
    taxes: tuple[TaxTotal, ...]
    sale_discount_minor: int
    sale_discount_by_code: tuple[tuple[str, int], ...]
    total_minor: int


def discount_amount(discount: Discount, base_minor: int) -> int:
    """Return what a discount takes off a non-negative base, in minor units."""
    if type(discount.value) is not int or discount.value < 0:
        raise InputError(
            f"a discount must be a whole non-negative number, not {discount.value!r}",
            field="discount",
        )
    if discount.kind == "percent":
        if discount.value > BP_ONE:
            raise InputError(
                f"a percent discount is at most {BP_ONE} bp "
                f"(100 %), not {discount.value}",
                field="discount",
            )
        return div_round(base_minor * discount.value, BP_ONE, "half_up")
    if discount.kind != "amount":
        raise InputError(f"unknown discount kind {discount.kind!r}", field="discount")
    if discount.value > base_minor:
        raise InputError(
            f"discount of {discount.value} exceeds the {base_minor} it applies to",
            field="discount",
        )
    return discount.value


def apply_discounts(
    totals: SaleTotals,
    *,
    rates: Mapping[str, TaxRate],
    currency: Currency,
    line_discounts: Mapping[int, Discount] | None = None,
    sale_discount: Discount | None = None,
) -> DiscountedSale:
    """Apply line and sale discounts and recompute tax per rate."""
    lines, sale_off, by_code = discount_lines(
        totals.lines, line_discounts or {}, sale_discount
    )
    taxes = tax_totals(
        ((rates[d.line.tax_class], d.paid_minor) for d in lines), currency
    )
    total = sum(t.gross_minor for t in taxes)
    return DiscountedSale(lines, taxes, sale_off, by_code, total)


def discount_lines(
    priced: tuple[PricedLine, ...],
    line_discounts: Mapping[int, Discount],
    sale_discount: Discount | None,
    exempt: frozenset[int] = frozenset(),
) -> tuple[tuple[DiscountedLine, ...], int, tuple[tuple[str, int], ...]]:
    """Return the discounted lines, the sale discount and its split by tax code.

    Lines in ``exempt`` (by position) take no line discount and no share of
    the sale discount.
    """
    if not line_discounts and sale_discount is None:
        # Most sales have no discount: each line costs its amount, as the
        # steps below would find with every discount zero.
        return tuple(DiscountedLine(line, 0, 0, line.amount_minor)
                     for line in priced), 0, ()
    after_line = _line_discounts(priced, line_discounts, exempt)
    amounts = [
        line.amount_minor - off for line, off in zip(priced, after_line, strict=True)
    ]
    base = [a if a > 0 and i not in exempt else 0 for i, a in enumerate(amounts)]
    if sale_discount and exempt and len(exempt) >= len(priced):
        raise InputError(
            "a sale discount needs a line besides the gift cards: a gift card "
            "is sold at its face value",
            field="discount",
        )
    sale_off = discount_amount(sale_discount, sum(base)) if sale_discount else 0
    if sale_off:
        by_code, shares = _allocate_sale_discount(priced, base, sale_off)
    else:
        by_code, shares = (), [0] * len(priced)
    lines = tuple(
        DiscountedLine(line, off, share, amount - share)
        for line, off, share, amount in zip(
            priced, after_line, shares, amounts, strict=True
        )
    )
    return lines, sale_off, by_code


def _line_discounts(
    lines: tuple[PricedLine, ...],
    discounts: Mapping[int, Discount],
    exempt: frozenset[int] = frozenset(),
) -> list[int]:
    """Return the amount each line discount takes off, by line position."""
    offs = [0] * len(lines)
    if not discounts:
        return offs
    unknown = [i for i in discounts if not 0 <= i < len(lines)]
    if unknown:
        raise InputError(f"no line {unknown[0]} to discount", field="discount")
    for i, discount in discounts.items():
        if i in exempt:
            raise InputError(
                f"line {i} ({lines[i].sku!r}) is a gift card, sold at its face "
                "value: it takes no discount",
                field=f"lines[{i}].discount",
            )
        if lines[i].amount_minor < 0:
            raise InputError(
                f"line {i} ({lines[i].sku!r}) is negative and takes no discount",
                field="discount",
            )
        offs[i] = discount_amount(discount, lines[i].amount_minor)
    return offs


def _allocate_sale_discount(
    lines: tuple[PricedLine, ...], base: list[int], sale_off: int
) -> tuple[tuple[tuple[str, int], ...], list[int]]:
    """Split the sale discount to rates, then within each rate to its lines."""
    members: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        found = members.get(line.tax_code)
        if found is None:
            members[line.tax_code] = [i]
        else:
            found.append(i)
    codes = sorted(members)
    code_base = [sum(base[i] for i in members[code]) for code in codes]
    code_share = allocate(sale_off, code_base)
    shares = [0] * len(lines)
    for code, off in zip(codes, code_share, strict=True):
        indices = members[code]
        for i, share in zip(
            indices, allocate(off, [base[i] for i in indices]), strict=True
        ):
            shares[i] = share
    by_code = tuple((c, s) for c, s in zip(codes, code_share, strict=True) if s)
    return by_code, shares
