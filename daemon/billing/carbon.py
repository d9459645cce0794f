"""The carbon estimate of a sale: per line, with uncertainty, recomputable.

Method (id ``METHOD_ID``, version ``METHOD_VERSION``), cradle-to-gate:

- A line with a **mass-based** factor: factor (kg CO2e per kg) x net mass per
  unit x qty.
- A line with a **spend-based** factor: factor (kg CO2e per USD of the
  factor's price year) x the line's amount without VAT, converted by the
  stall's configured USD-per-unit rate for that price year. VAT is left out
  because it pays for no production.
- Plus the **packaging**: its material factor x packaging mass x qty.
- Each part's range is value x (1 -/+ its factor's relative uncertainty).
  Ranges add up linearly (worst case: errors are not assumed to cancel).
- Everything is summed exactly (integer numerators over common denominators,
  stored as Fractions); only printed figures are rounded
  (``half_up``): grams below 1 kg, else kg with one decimal.

A contribution or offset is never subtracted: nothing here takes one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from daemon.billing.factors import (
    EmissionFactor,
    FactorTable,
    factor_from_json,
    factor_table,
    factor_to_json,
)
from daemon.billing.pricing import BP_ONE
from daemon.billing.rounding import round_fraction
from daemon.errors import InputError
from daemon.money import Currency

METHOD_ID = "stallbox-co2e"
METHOD_VERSION = "1.0"
GRAMS_PER_KG = 1000
_ZERO = Fraction(0)


@dataclass(frozen=True, slots=True)
class SpendConversion:
    """USD of a price year per one unit (not minor unit) of the stall currency."""

    currency: str
    price_year: int
    usd_per_unit: Fraction


@dataclass(frozen=True, slots=True)
class CarbonLine:
    """The inputs of one line's estimate, all exact and storable."""

    sku: str
    qty: int
    factor_id: str
    mass_g: int | None = None  # net mass per unit, for a mass-based factor
    gross_minor: int = 0  # the line's paid amount, for a spend-based factor
    rate_bp: int = 0  # its VAT rate, taken out of gross_minor
    packaging_factor_id: str = ""
    packaging_mass_g: int = 0  # per unit
    defaulted: bool = False  # the stall default stood in for a missing mapping


@dataclass(frozen=True, slots=True)
class LineEstimate:
    """One line's estimate in kg CO2e: goods, packaging and the range."""

    sku: str
    factor_id: str
    goods_kg: Fraction
    packaging_kg: Fraction
    low_kg: Fraction
    high_kg: Fraction
    defaulted: bool


@dataclass(frozen=True, slots=True)
class CarbonEstimate:
    """A sale's estimate with the method, datasets and factor table behind it."""

    lines: tuple[LineEstimate, ...]
    total_kg: Fraction
    low_kg: Fraction
    high_kg: Fraction
    method_id: str
    method_version: str
    datasets: tuple[tuple[str, str], ...]
    table_hash: str


def estimate(
    lines: Sequence[CarbonLine],
    table: FactorTable,
    *,
    conversion: SpendConversion,
    currency: Currency,
) -> CarbonEstimate:
    """Estimate the sale's kg CO2e, summing exact values."""
    if conversion.currency != currency.code:
        raise InputError(
            f"spend conversion is for {conversion.currency}, the sale is in "
            f"{currency.code}",
            field="carbon.conversion",
        )
    per_line = tuple(_line(x, table, conversion, currency) for x in lines)
    used_ids = {x.factor_id for x in lines} | {
        x.packaging_factor_id for x in lines if x.packaging_factor_id
    }
    used = [table.get(i) for i in used_ids]
    return CarbonEstimate(
        per_line,
        exact_sum([x.goods_kg for x in per_line] + [x.packaging_kg for x in per_line]),
        exact_sum([x.low_kg for x in per_line]),
        exact_sum([x.high_kg for x in per_line]),
        METHOD_ID,
        METHOD_VERSION,
        tuple(sorted({(f.dataset, f.version) for f in used})),
        table.version_hash,
    )


def exact_sum(values: Sequence[Fraction]) -> Fraction:
    """Sum Fractions exactly, adding numerators per denominator first (faster)."""
    by_denominator: dict[int, int] = {}
    for value in values:
        d = value.denominator
        by_denominator[d] = by_denominator.get(d, 0) + value.numerator
    common = 1
    for d in by_denominator:
        # lcm without the math module (banned here so no float can slip in):
        # Fraction(common, d) is common/g over d/g, so its numerator x d is the lcm.
        common = Fraction(common, d).numerator * d
    return Fraction(sum(n * (common // d) for d, n in by_denominator.items()), common)


def _line(
    line: CarbonLine,
    table: FactorTable,
    conversion: SpendConversion,
    currency: Currency,
) -> LineEstimate:
    """Return one line's estimate, or raise InputError naming the line.

    The arithmetic is on integer numerators and denominators, with one
    Fraction (one gcd) per stored figure: the values are the same exact
    fractions as value-by-value Fraction arithmetic, at a fraction of its cost.
    """
    if type(line.qty) is not int or line.qty < 1:
        raise InputError(f"carbon line {line.sku!r} needs a quantity of at least 1")
    factor = table.get(line.factor_id)
    gn, gd = _goods_kg(line, factor, conversion, currency)
    pn, pd, mun, mud = _packaging_kg(line, table)
    un, ud = factor.uncertainty.numerator, factor.uncertainty.denominator
    # Over the common denominator gd*pd*ud*mud: total and its half-width.
    total_n = (gn * pd + pn * gd) * ud * mud
    spread_n = gn * un * pd * mud + pn * mun * gd * ud
    common = gd * pd * ud * mud
    return LineEstimate(
        line.sku,
        factor.factor_id,
        Fraction(gn, gd),
        Fraction(pn, pd) if pn else _ZERO,
        Fraction(total_n - spread_n, common),
        Fraction(total_n + spread_n, common),
        line.defaulted,
    )


def _packaging_kg(line: CarbonLine, table: FactorTable) -> tuple[int, int, int, int]:
    """Return the packaging's kg CO2e and its relative uncertainty, as int pairs."""
    if not line.packaging_factor_id:
        return 0, 1, 0, 1
    material = table.get(line.packaging_factor_id)
    if material.basis != "mass":
        raise InputError(f"packaging factor {material.factor_id!r} is not mass-based")
    n, d = _mass_kg(material, line.packaging_mass_g, line.qty)
    return n, d, material.uncertainty.numerator, material.uncertainty.denominator


def _goods_kg(
    line: CarbonLine,
    factor: EmissionFactor,
    conversion: SpendConversion,
    currency: Currency,
) -> tuple[int, int]:
    """Return the goods' kg CO2e by the factor's basis, as (numerator, denominator)."""
    if factor.basis == "mass":
        if line.mass_g is None:
            raise InputError(
                f"{line.sku!r} has a mass-based factor but no net mass", field="mass"
            )
        return _mass_kg(factor, line.mass_g, line.qty)
    if factor.price_year != conversion.price_year:
        raise InputError(
            f"factor {factor.factor_id!r} is in {factor.price_year} USD, the "
            f"conversion in {conversion.price_year} USD",
            field="carbon.conversion",
        )
    if line.gross_minor < 0:
        raise InputError(f"carbon line {line.sku!r} has a negative amount")
    # factor x (gross without VAT, in whole currency units) x USD per unit
    value, usd = factor.kg_co2e_per_unit, conversion.usd_per_unit
    numerator = value.numerator * line.gross_minor * BP_ONE * usd.numerator
    denominator = (value.denominator * (BP_ONE + line.rate_bp)
                   * 10**currency.exponent * usd.denominator)
    return numerator, denominator


def _mass_kg(factor: EmissionFactor, mass_g: int, qty: int) -> tuple[int, int]:
    """Return factor x mass x qty in kg CO2e, as (numerator, denominator)."""
    if type(mass_g) is not int or mass_g < 0:
        raise InputError(f"mass must be whole grams >= 0, not {mass_g!r}")
    value = factor.kg_co2e_per_unit
    return value.numerator * mass_g * qty, value.denominator * GRAMS_PER_KG


def format_co2e(kg: Fraction, decimal_sep: str = ",") -> str:
    """Format kg CO2e as printed: '850 g' under 1 kg, else '2,4 kg' (half_up)."""
    grams = round_fraction(kg * GRAMS_PER_KG, "half_up")
    if abs(grams) < GRAMS_PER_KG:
        return f"{grams} g"
    tenths = round_fraction(kg * 10, "half_up")
    whole, tenth = divmod(abs(tenths), 10)
    sign = "-" if tenths < 0 else ""
    return f"{sign}{whole}{decimal_sep}{tenth} kg"


def receipt_lines(estimate_: CarbonEstimate, decimal_sep: str = ",") -> tuple[str, ...]:
    """Return the carbon block's text: total and range, method, data, no offsets."""

    total, low, high = (
        format_co2e(kg, decimal_sep)
        for kg in (estimate_.total_kg, estimate_.low_kg, estimate_.high_kg)
    )
    data = "; ".join(f"{name} {version}" for name, version in estimate_.datasets)
    return (
        f"Est. footprint {total} CO2e",
        f"(range {low} to {high})",
        f"Method {estimate_.method_id} {estimate_.method_version}",
        f"Data: {data}" if data else "Data: none",
        "No offsets netted.",
    )


def carbon_record(
    lines: Sequence[CarbonLine],
    table: FactorTable,
    conversion: SpendConversion,
    currency: Currency,
) -> dict[str, object]:
    """Return what a journaled sale stores to recompute its estimate later."""
    ids = sorted(
        {x.factor_id for x in lines}
        | {x.packaging_factor_id for x in lines if x.packaging_factor_id}
    )
    return {
        "method": [METHOD_ID, METHOD_VERSION],
        "table_hash": table.version_hash,
        "currency": currency.code,
        "conversion": [
            conversion.currency,
            conversion.price_year,
            str(conversion.usd_per_unit),
        ],
        "factors": [factor_to_json(table.get(i)) for i in ids],
        "lines": [_line_to_json(x) for x in lines],
    }


def estimate_from_record(record: dict[str, object]) -> CarbonEstimate:
    """Recompute an estimate from a stored record, with its original hash."""
    method = record["method"]
    if method != [METHOD_ID, METHOD_VERSION]:
        raise InputError(f"record is for method {method!r}, this is {METHOD_VERSION}")
    factors = [factor_from_json(f) for f in record["factors"]]  # type: ignore[attr-defined]
    table = factor_table(factors, version_hash=str(record["table_hash"]))
    code, year, rate = record["conversion"]  # type: ignore[misc]
    lines = [CarbonLine(**x) for x in record["lines"]]  # type: ignore[attr-defined]
    return estimate(
        lines,
        table,
        conversion=SpendConversion(str(code), int(year), Fraction(str(rate))),
        currency=Currency.of(str(record["currency"])),
    )


def estimate_to_json(estimate_: CarbonEstimate) -> str:
    """Return an estimate as canonical JSON text, Fractions exact."""
    body = {
        "lines": [
            [
                x.sku,
                x.factor_id,
                str(x.goods_kg),
                str(x.packaging_kg),
                str(x.low_kg),
                str(x.high_kg),
                x.defaulted,
            ]
            for x in estimate_.lines
        ],
        "total_kg": str(estimate_.total_kg),
        "range_kg": [str(estimate_.low_kg), str(estimate_.high_kg)],
        "method": [estimate_.method_id, estimate_.method_version],
        "datasets": [list(d) for d in estimate_.datasets],
        "table_hash": estimate_.table_hash,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _line_to_json(line: CarbonLine) -> dict[str, object]:
    """Return a carbon line's inputs as a JSON-able dict of its fields."""
    return {
        "sku": line.sku,
        "qty": line.qty,
        "factor_id": line.factor_id,
        "mass_g": line.mass_g,
        "gross_minor": line.gross_minor,
        "rate_bp": line.rate_bp,
        "packaging_factor_id": line.packaging_factor_id,
        "packaging_mass_g": line.packaging_mass_g,
        "defaulted": line.defaulted,
    }
