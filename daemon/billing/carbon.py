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
- Everything is exact: each figure is an integer numerator over one common
  denominator per sale (the least common multiple of the line denominators),
  so sums are integer sums; a stored figure is that fraction in lowest terms.
  Only printed figures are rounded (``half_up``): grams below 1 kg, else kg
  with one decimal.

Speed (issue 4's pricing target): each factor's per-gram or per-minor-unit
coefficient is worked out once per factor table and spend conversion and kept
in the table's cache (``FactorTable.derived``); a sale then costs a few
integer products per line. The stored text (``estimate_to_json``) and the
printed block (``receipt_lines``) are formatted once per estimate.

A contribution or offset is never subtracted: nothing here takes one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm  # integers only: billing imports nothing else from math
from typing import Any, NamedTuple

from daemon.billing.factors import (
    EmissionFactor,
    FactorTable,
    factor_from_json,
    factor_table,
    factor_to_json,
)
from daemon.billing.pricing import BP_ONE
from daemon.billing.rounding import div_round
from daemon.errors import InputError
from daemon.money import Currency

METHOD_ID = "stallbox-co2e"
METHOD_VERSION = "1.0"
GRAMS_PER_KG = 1000


@dataclass(frozen=True, slots=True)
class SpendConversion:
    """USD of a price year per one unit (not minor unit) of the stall currency."""

    currency: str
    price_year: int
    usd_per_unit: Fraction


class CarbonLine(NamedTuple):
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


class _Coefficient(NamedTuple):
    """One factor's kg CO2e per input unit and its half-width, over one denominator.

    The input unit is a gram of product (mass basis) or a minor unit of the
    paid amount before VAT is taken out (spend basis; the line then divides by
    BP_ONE + its VAT rate). ``problem`` is the refusal a spend factor of
    another price year earns when used.
    """

    factor: EmissionFactor
    mass_based: bool
    dataset: tuple[str, str]
    numerator: int
    spread_numerator: int
    denominator: int
    problem: str


# sku, factor id, goods, packaging, low, high (numerators over den), den, defaulted
_Row = tuple[str, str, int, int, int, int, int, bool]


class CarbonEstimate:
    """A sale's estimate with the method, datasets and factor table behind it.

    Each line's figures are integer numerators over that line's denominator,
    and the sale's sums as (numerator, denominator) pairs over one common
    denominator, not always in lowest terms (``figures_kg``); the
    Fraction views (``lines``, ``total_kg``, ``low_kg``, ``high_kg``) and the
    stored and printed texts are built once, when first asked for. A sale
    needs only the integers (the event's text, the API's grams); building
    three Fractions per sale, each a gcd and a normalisation in Python, cost
    about a tenth of its carbon work.
    """

    __slots__ = ("_rows", "figures_kg", "method_id", "method_version", "datasets",
                 "table_hash", "_lines", "_sums", "_json", "_text")

    def __init__(self, rows: tuple[_Row, ...], figures_kg: tuple[tuple[int, int], ...],
                 datasets: tuple[tuple[str, str], ...], table_hash: str) -> None:
        self._rows = rows
        self.figures_kg = figures_kg  # total, low, high
        self.method_id = METHOD_ID
        self.method_version = METHOD_VERSION
        self.datasets = datasets
        self.table_hash = table_hash
        self._lines: tuple[LineEstimate, ...] | None = None
        self._sums: tuple[Fraction, ...] | None = None
        self._json: str | None = None
        self._text: dict[str, tuple[str, ...]] = {}

    @property
    def lines(self) -> tuple[LineEstimate, ...]:
        """Return each line's estimate as Fractions (built on first use)."""
        if self._lines is None:
            self._lines = tuple(
                LineEstimate(sku, fid, Fraction(g, d), Fraction(p, d),
                             Fraction(lo, d), Fraction(hi, d), flag)
                for sku, fid, g, p, lo, hi, d, flag in self._rows)
        return self._lines

    def _fractions(self) -> tuple[Fraction, ...]:
        """Return total, low and high as Fractions (built on first use)."""
        if self._sums is None:
            self._sums = tuple(Fraction(*kg) for kg in self.figures_kg)
        return self._sums

    @property
    def total_kg(self) -> Fraction:
        """Return the sale's estimate in kg CO2e."""
        return self._fractions()[0]

    @property
    def low_kg(self) -> Fraction:
        """Return the low end of the sale's range in kg CO2e."""
        return self._fractions()[1]

    @property
    def high_kg(self) -> Fraction:
        """Return the high end of the sale's range in kg CO2e."""
        return self._fractions()[2]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CarbonEstimate):
            return NotImplemented
        return estimate_to_json(self) == estimate_to_json(other)

    def __hash__(self) -> int:
        return hash(estimate_to_json(self))

    def __repr__(self) -> str:
        return f"CarbonEstimate({estimate_to_json(self)})"


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
    scope = _scope(table, conversion, currency)
    rows = []
    datasets: set[tuple[str, str]] = set()
    sums: dict[int, list[int]] = {}  # per denominator (a sale has few)
    for line in lines:
        row = _line_row(line, scope, datasets)
        rows.append(row)
        _, _, goods, pack, low, high, d, _ = row
        found = sums.get(d)
        if found is None:
            sums[d] = [goods + pack, low, high]
        else:
            found[0] += goods + pack
            found[1] += low
            found[2] += high
    common = lcm(*sums)
    total = [0, 0, 0]
    for d, values in sums.items():
        scale = common // d
        for i in range(3):
            total[i] += values[i] * scale
    # plain pairs: a NamedTuple costs a Python-level __new__ per figure
    return CarbonEstimate(tuple(rows), ((total[0], common), (total[1], common),
                                        (total[2], common)),
                          tuple(sorted(datasets)), table.version_hash)


def exact_sum(values: Sequence[Fraction]) -> Fraction:
    """Sum Fractions exactly over their least common denominator."""
    common = lcm(*(v.denominator for v in values))
    return Fraction(sum(v.numerator * (common // v.denominator) for v in values),
                    common)


def _line_row(line: CarbonLine, scope: _Scope,
              datasets: set[tuple[str, str]]) -> _Row:
    """Return one line's goods, packaging, low and high over one denominator.

    Adds the datasets the line draws on; raises InputError naming the line
    when its inputs cannot be estimated.
    """
    sku, qty, factor_id, mass_g, gross, rate_bp, material_id, material_g, flag = line
    if type(qty) is not int or qty < 1:
        raise InputError(f"carbon line {sku!r} needs a quantity of at least 1")
    goods = scope.cache.get(factor_id) or _coefficient(scope, factor_id)
    if goods.mass_based:
        if mass_g is None:
            raise InputError(
                f"{sku!r} has a mass-based factor but no net mass", field="mass"
            )
        units, d = _grams(mass_g) * qty, goods.denominator
    else:
        if goods.problem:
            raise InputError(goods.problem, field="carbon.conversion")
        if gross < 0:
            raise InputError(f"carbon line {sku!r} has a negative amount")
        if type(rate_bp) is not int or not 0 <= rate_bp <= BP_ONE:
            raise InputError(f"carbon line {sku!r} has a VAT rate out of range")
        units, d = gross, goods.denominator * (BP_ONE + rate_bp)
    datasets.add(goods.dataset)
    g, spread = goods.numerator * units, goods.spread_numerator * units
    if not material_id:
        return sku, factor_id, g, 0, g - spread, g + spread, d, flag
    material = _coefficient(scope, material_id)
    if not material.mass_based:
        raise InputError(f"packaging factor {material_id!r} is not mass-based")
    datasets.add(material.dataset)
    grams = _grams(material_g) * qty
    md = material.denominator
    common = lcm(d, md)
    g, spread = g * (common // d), spread * (common // d)
    p = material.numerator * grams * (common // md)
    spread += material.spread_numerator * grams * (common // md)
    return sku, factor_id, g, p, g + p - spread, g + p + spread, common, flag


def _grams(mass_g: object) -> int:
    """Return a mass in whole grams >= 0, or raise InputError."""
    if type(mass_g) is not int or mass_g < 0:
        raise InputError(f"mass must be whole grams >= 0, not {mass_g!r}")
    return mass_g


class _Scope(NamedTuple):
    """A factor table's coefficients for one spend conversion and currency."""

    table: FactorTable
    price_year: int
    usd_per_unit: Fraction
    exponent: int
    cache: dict[str, _Coefficient]


def _scope(table: FactorTable, conversion: SpendConversion,
           currency: Currency) -> _Scope:
    """Return the table's cache of coefficients for this conversion."""
    # The rate as its two integers: hashing a Fraction runs Python code (a
    # modular inverse), a tuple of ints does not; a Fraction is always in
    # lowest terms, so equal rates still give equal keys.
    rate = conversion.usd_per_unit
    key = ("carbon", conversion.price_year, rate.numerator, rate.denominator,
           currency.exponent)
    cache = table.derived.get(key)
    if cache is None:
        cache = table.derived.setdefault(key, {})
    return _Scope(table, conversion.price_year, conversion.usd_per_unit,
                  currency.exponent, cache)  # type: ignore[arg-type]


def _coefficient(scope: _Scope, factor_id: str) -> _Coefficient:
    """Return a factor's coefficient, working it out on first use."""
    found = scope.cache.get(factor_id)
    if found is not None:
        return found
    factor = scope.table.get(factor_id)
    problem = ""
    if factor.basis == "mass":
        per_unit = factor.kg_co2e_per_unit / GRAMS_PER_KG
    else:
        # factor x gross minor units x BP_ONE / 10**exponent x USD per unit;
        # the line then divides by BP_ONE + its VAT rate.
        per_unit = (factor.kg_co2e_per_unit * scope.usd_per_unit * BP_ONE
                    / 10**scope.exponent)
        if factor.price_year != scope.price_year:
            problem = (f"factor {factor.factor_id!r} is in {factor.price_year} USD, "
                       f"the conversion in {scope.price_year} USD")
    spread = per_unit * factor.uncertainty
    d = lcm(per_unit.denominator, spread.denominator)
    found = _Coefficient(factor, factor.basis == "mass",
                         (factor.dataset, factor.version),
                         per_unit.numerator * (d // per_unit.denominator),
                         spread.numerator * (d // spread.denominator), d, problem)
    scope.cache[factor_id] = found
    return found


def format_co2e(kg: Fraction, decimal_sep: str = ",") -> str:
    """Format kg CO2e as printed: '850 g' under 1 kg, else '2,4 kg' (half_up)."""
    grams = div_round(kg.numerator * GRAMS_PER_KG, kg.denominator, "half_up")
    if abs(grams) < GRAMS_PER_KG:
        return f"{grams} g"
    tenths = div_round(kg.numerator * 10, kg.denominator, "half_up")
    whole, tenth = divmod(abs(tenths), 10)
    sign = "-" if tenths < 0 else ""
    return f"{sign}{whole}{decimal_sep}{tenth} kg"


def receipt_lines(estimate_: CarbonEstimate, decimal_sep: str = ",") -> tuple[str, ...]:
    """Return the carbon block's text: total and range, method, data, no offsets."""
    cached = estimate_._text.get(decimal_sep)
    if cached is not None:
        return cached
    total, low, high = (
        format_co2e(kg, decimal_sep)
        for kg in (estimate_.total_kg, estimate_.low_kg, estimate_.high_kg)
    )
    data = "; ".join(f"{name} {version}" for name, version in estimate_.datasets)
    text = (
        f"Est. footprint {total} CO2e",
        f"(range {low} to {high})",
        f"Method {estimate_.method_id} {estimate_.method_version}",
        f"Data: {data}" if data else "Data: none",
        "No offsets netted.",
    )
    estimate_._text[decimal_sep] = text
    return text


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
        "factors": [_factor_json(table, i) for i in ids],
        "lines": [_line_to_json(x) for x in lines],
    }


def _factor_json(table: FactorTable, factor_id: str) -> dict[str, object]:
    """Return a factor's JSON dict, a fresh copy of the one the table caches."""
    key = ("json", factor_id)
    cached = table.derived.get(key)
    if cached is None:
        cached = table.derived.setdefault(key, factor_to_json(table.get(factor_id)))
    return dict(cached)  # type: ignore[call-overload]


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
    """Return an estimate as canonical JSON text, Fractions exact (built once)."""
    if estimate_._json is not None:
        return estimate_._json
    estimate_._json = json.dumps(estimate_body(estimate_), sort_keys=True,
                                 ensure_ascii=False, separators=(",", ":"))
    return estimate_._json


def estimate_body(estimate_: CarbonEstimate) -> dict[str, Any]:
    """Return a new dict that encodes to ``estimate_to_json``'s text.

    JSON types only (str, int, list), so canonical JSON of the dict is that
    text byte for byte: a sale event takes it without parsing the text back.
    """
    total, low, high = estimate_.figures_kg
    return {
        "lines": [
            [sku, fid, _ratio(g, d), _ratio(p, d) if p else "0", _ratio(lo, d),
             _ratio(hi, d), flag]
            for sku, fid, g, p, lo, hi, d, flag in estimate_._rows
        ],
        "total_kg": _ratio(*total),
        "range_kg": [_ratio(*low), _ratio(*high)],
        "method": [estimate_.method_id, estimate_.method_version],
        "datasets": [list(d) for d in estimate_.datasets],
        "table_hash": estimate_.table_hash,
    }


def _ratio(numerator: int, denominator: int) -> str:
    """Return numerator/denominator in lowest terms as str(Fraction) writes it."""
    g = gcd(numerator, denominator)
    if g == denominator:
        return str(numerator // g)
    return f"{numerator // g}/{denominator // g}"


def _line_to_json(line: CarbonLine) -> dict[str, object]:
    """Return a carbon line's inputs as a JSON-able dict of its fields."""
    sku, qty, factor_id, mass_g, gross, rate_bp, material_id, material_g, flag = line
    return {
        "sku": sku,
        "qty": qty,
        "factor_id": factor_id,
        "mass_g": mass_g,
        "gross_minor": gross,
        "rate_bp": rate_bp,
        "packaging_factor_id": material_id,
        "packaging_mass_g": material_g,
        "defaulted": flag,
    }
