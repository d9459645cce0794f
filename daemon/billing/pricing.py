"""Price a sale: gross line amounts and tax per rate on the receipt total.

Rounding rules, one per step (modes as defined in ``daemon.billing.rounding``):

- **Tax per rate** (both modes): the receipt's gross total at a rate is split
  into tax = gross x rate / (1 + rate), rounded ``half_up``; net = gross - tax.
  Tax is never the sum of rounded per-line taxes, so ten lines of 4,50 at 7 %
  and one line of 10 x 4,50 both give 45,00 with tax 2,94.
- **Net pricing**: a net-priced unit is first turned into the gross unit price
  the customer pays, unit_net x (1 + rate) rounded ``half_up`` to the minor
  unit; the line is qty x that gross unit, and the receipt is then taxed per
  rate as above. This is what makes the same goods cost the same however they
  are entered: 3,60 net at 5,5 % is 3,798 -> 3,80 a unit, so ten lines of one
  and one line of ten both total 38,00. The receipt's net is derived (38,00 -
  tax 1,98 = 36,02), not the sum of catalog nets (36,00): rounding the unit
  price may move net by up to half a minor unit per unit sold.

Net + tax = gross per rate holds exactly because net is defined as the
difference. All arithmetic is on ints; no float is ever formed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from daemon.billing.rounding import div_round
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR, Currency

BP_ONE = 10_000  # basis points in a whole: rate_bp / BP_ONE is the rate
MAX_QTY = 100_000
MAX_LINES = 1_000
MAX_RATE_BP = BP_ONE  # 100 %: no jurisdiction taxes more, a larger value is a typo

Pricing = Literal["gross", "net"]


@dataclass(frozen=True, slots=True)
class TaxRate:
    """One tax rate of the stall's jurisdiction, bound to a tax class."""

    tax_class: str
    code: str
    rate_bp: int
    label: str


class LineInput(NamedTuple):
    """One line as entered: unit price in the stall's pricing mode."""

    sku: str
    name: str
    qty: int
    unit_minor: int
    tax_class: str


class PricedLine(NamedTuple):
    """One priced line; unit_minor and amount_minor are gross (what is paid)."""

    sku: str
    name: str
    qty: int
    unit_minor: int
    amount_minor: int
    tax_code: str
    tax_class: str


class TaxTotal(NamedTuple):
    """Net, tax and gross for one rate over the receipt's total at that rate."""

    code: str
    label: str
    rate_bp: int
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True, slots=True)
class SaleTotals:
    """A priced sale: its lines, tax per rate (sorted by code) and the total."""

    lines: tuple[PricedLine, ...]
    taxes: tuple[TaxTotal, ...]
    total_minor: int


def price_sale(
    lines: Sequence[LineInput],
    *,
    pricing: Pricing,
    rates: Mapping[str, TaxRate],
    currency: Currency,
) -> SaleTotals:
    """Price the lines and compute tax per rate on the receipt total."""
    priced = price_lines(lines, pricing=pricing, rates=rates)
    taxes = tax_totals(
        ((rates[line.tax_class], line.amount_minor) for line in priced), currency
    )
    return SaleTotals(priced, taxes, sum(t.gross_minor for t in taxes))


def price_lines(
    lines: Sequence[LineInput], *, pricing: Pricing, rates: Mapping[str, TaxRate]
) -> tuple[PricedLine, ...]:
    """Validate the lines and price each gross, without the tax table."""
    if pricing not in ("gross", "net"):
        raise InputError(f"pricing must be 'gross' or 'net', not {pricing!r}")
    if len(lines) > MAX_LINES:
        raise InputError(f"a sale has at most {MAX_LINES} lines, not {len(lines)}")
    checked: dict[str, TaxRate] = {}  # each tax class's rate is checked once
    priced = []
    for line in lines:
        rate = checked.get(line.tax_class)
        if rate is None:
            rate = checked[line.tax_class] = rate_for(line.tax_class, rates)
        priced.append(_price_line(line, pricing, rate))
    return tuple(priced)


def tax_totals(
    amounts: Iterable[tuple[TaxRate, int]], currency: Currency
) -> tuple[TaxTotal, ...]:
    """Sum gross amounts per rate and split each rate's total into net and tax."""
    gross_by_code: dict[str, int] = {}
    rate_by_code: dict[str, TaxRate] = {}
    for rate, gross_minor in amounts:
        code = rate.code
        seen = rate_by_code.get(code)
        if seen is None:
            rate_by_code[code] = rate
            gross_by_code[code] = gross_minor
            continue
        if seen is not rate and seen.rate_bp != rate.rate_bp:
            raise InputError(
                f"tax code {code!r} is used for {seen.rate_bp} and "
                f"{rate.rate_bp} basis points; give each rate its own code"
            )
        gross_by_code[code] += gross_minor
    _check_amount(sum(gross_by_code.values()), "sale total", currency)
    return tuple(
        split_gross(rate_by_code[code], gross_by_code[code])
        for code in sorted(gross_by_code)
    )


def split_gross(rate: TaxRate, gross_minor: int) -> TaxTotal:
    """Split one rate's gross total into net and tax (tax rounded half_up)."""
    tax = div_round(gross_minor * rate.rate_bp, BP_ONE + rate.rate_bp, "half_up")
    return TaxTotal(
        rate.code, rate.label, rate.rate_bp, gross_minor - tax, tax, gross_minor
    )


def gross_unit(unit_net_minor: int, rate: TaxRate) -> int:
    """Return the gross unit price for a net one, rounded half_up."""
    return div_round(unit_net_minor * (BP_ONE + rate.rate_bp), BP_ONE, "half_up")


def _price_line(line: LineInput, pricing: Pricing, rate: TaxRate) -> PricedLine:
    """Validate one line and return it priced gross."""
    qty, unit = line.qty, line.unit_minor
    if type(qty) is not int or not 0 < abs(qty) <= MAX_QTY:
        raise InputError(
            f"quantity of {line.sku!r} must be a whole number from 1 to "
            f"{MAX_QTY} (negative for a return), not {qty!r}",
            field="qty",
        )
    if type(unit) is not int or abs(unit) > MAX_AMOUNT_MINOR:
        raise InputError(
            f"unit price of {line.sku!r} must be whole minor units within "
            f"±{MAX_AMOUNT_MINOR}, not {unit!r}",
            field="unit_minor",
        )
    if pricing != "gross":
        unit = gross_unit(unit, rate)
    amount = qty * unit
    if abs(amount) > MAX_AMOUNT_MINOR:
        raise InputError(f"line {line.sku!r} is too large: {qty} x {unit}")
    return PricedLine(line.sku, line.name, qty, unit, amount, rate.code, line.tax_class)


def rate_for(tax_class: str, rates: Mapping[str, TaxRate]) -> TaxRate:
    """Return the rate for a tax class, or raise InputError naming the class."""
    rate = rates.get(tax_class)
    if rate is None:
        known = ", ".join(sorted(rates)) or "none configured"
        raise InputError(
            f"unknown tax class {tax_class!r} (known: {known})", field="tax_class"
        )
    if type(rate.rate_bp) is not int or not 0 <= rate.rate_bp <= MAX_RATE_BP:
        raise InputError(
            f"tax rate for {tax_class!r} must be 0 to {MAX_RATE_BP} basis points, "
            f"not {rate.rate_bp!r}"
        )
    return rate


def _check_amount(amount_minor: int, what: str, currency: Currency) -> None:
    """Refuse amounts beyond what money.py can parse back (a typo, not a sale)."""
    if abs(amount_minor) > MAX_AMOUNT_MINOR:
        shown = currency.format(amount_minor)
        raise InputError(f"{what} {shown} {currency.code} is out of range")
