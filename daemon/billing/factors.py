"""Emission factors: the model, the table's version hash and the importers.

Two official datasets are read as their publishers ship them:

- ADEME **Agribalyse** synthesis CSV: one row per food, "Changement
  climatique" in kg CO2e per kg of product as sold, and the row's data quality
  rating "DQR" (1 best to 5 worst), from which the uncertainty is derived.
- US EPA **Supply Chain GHG Emission Factors** (NAICS-6, CO2e): kg CO2e per
  USD of purchaser price in the dataset's price year; the factor "with
  margins" is used because a stall sells at purchaser prices. The dataset has
  no per-row quality rating, so spend-based factors carry a stated default.

Numbers are parsed from their decimal text into Fractions (``Fraction("2.93e-7")``
is exact), so a factor is the very figure the publisher printed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from daemon.errors import InputError

Basis = Literal["mass", "spend"]
AGRIBALYSE = "ADEME Agribalyse"
EPA_SUPPLY_CHAIN = "US EPA Supply Chain GHG Emission Factors"
# Stated, not measured: the EPA publishes no per-factor quality rating.
SPEND_DEFAULT_UNCERTAINTY = Fraction(1, 2)
# Agribalyse DQR bands (upper bound inclusive) to a relative uncertainty: the
# bands are the PEF quality levels; the percentages are this method's choice.
DQR_BANDS: tuple[tuple[Fraction, Fraction], ...] = (
    (Fraction("1.6"), Fraction(1, 10)),
    (Fraction("2.0"), Fraction(2, 10)),
    (Fraction("3.0"), Fraction(3, 10)),
    (Fraction("4.0"), Fraction(5, 10)),
    (Fraction("5.0"), Fraction(7, 10)),
)
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class EmissionFactor:
    """One factor: kg CO2e per kg (mass) or per USD of its price year (spend)."""

    factor_id: str
    dataset: str
    version: str
    record_id: str
    name: str
    basis: Basis
    kg_co2e_per_unit: Fraction
    uncertainty: Fraction  # relative half-width: 3/10 means ±30 %
    quality: str  # what the uncertainty was derived from, e.g. "DQR 2.53"
    price_year: int = 0  # spend basis only: the USD year of the denominator


@dataclass(frozen=True, slots=True)
class FactorTable:
    """Factors by id, with the hash that names this exact table's content."""

    factors: dict[str, EmissionFactor]
    version_hash: str
    # Figures worked out from the factors once per table (carbon coefficients,
    # factor JSON), so a new catalog or config version starts a fresh cache.
    derived: dict[object, object] = field(
        default_factory=dict, compare=False, repr=False
    )

    def get(self, factor_id: str) -> EmissionFactor:
        """Return a factor, or raise InputError naming the unknown id."""
        try:
            return self.factors[factor_id]
        except KeyError:
            raise InputError(
                f"no emission factor {factor_id!r}", field="factor"
            ) from None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dataset row refused, with its 1-based row number (header is row 1)."""

    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Factors read from one dataset file and the rows refused."""

    dataset: str
    version: str
    factors: tuple[EmissionFactor, ...]
    rejected: tuple[Rejected, ...]


def factor_table(
    factors: Iterable[EmissionFactor], version_hash: str = ""
) -> FactorTable:
    """Build a table; its hash is over the factors' canonical text unless given."""
    by_id: dict[str, EmissionFactor] = {}
    for factor in factors:
        if factor.factor_id in by_id:
            raise InputError(f"emission factor {factor.factor_id!r} given twice")
        by_id[factor.factor_id] = factor
    digest = hashlib.sha256()
    for factor_id in sorted(by_id):
        digest.update(canonical_factor(by_id[factor_id]).encode() + b"\n")
    return FactorTable(by_id, version_hash or digest.hexdigest())


def canonical_factor(factor: EmissionFactor) -> str:
    """Return a factor as canonical JSON, Fractions as 'num/den' strings."""
    return json.dumps(
        factor_to_json(factor),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def factor_to_json(factor: EmissionFactor) -> dict[str, object]:
    """Return a factor as a JSON-able dict that factor_from_json reads back."""
    return {
        "id": factor.factor_id,
        "dataset": factor.dataset,
        "version": factor.version,
        "record": factor.record_id,
        "name": factor.name,
        "basis": factor.basis,
        "value": str(factor.kg_co2e_per_unit),
        "uncertainty": str(factor.uncertainty),
        "quality": factor.quality,
        "price_year": factor.price_year,
    }


def factor_from_json(data: dict[str, object]) -> EmissionFactor:
    """Return the factor a factor_to_json dict describes."""
    basis = str(data["basis"])
    if basis not in ("mass", "spend"):
        raise InputError(f"unknown factor basis {basis!r}", field="basis")
    return EmissionFactor(
        str(data["id"]),
        str(data["dataset"]),
        str(data["version"]),
        str(data["record"]),
        str(data["name"]),
        basis,  # type: ignore[arg-type]
        Fraction(str(data["value"])),
        Fraction(str(data["uncertainty"])),
        str(data["quality"]),
        int(str(data["price_year"])),
    )


def parse_decimal(text: str) -> Fraction:
    """Parse a published decimal figure ('7.58', '2.93e-7') exactly."""
    cleaned = text.strip()
    if not _DECIMAL.fullmatch(cleaned):
        raise InputError(f"not a decimal number: {text[:40]!r}")
    return Fraction(cleaned)


def dqr_uncertainty(dqr: Fraction) -> Fraction:
    """Return the relative uncertainty for an Agribalyse DQR (1 to 5)."""
    if not 1 <= dqr <= 5:
        raise InputError(f"DQR must be between 1 and 5, not {decimal_text(dqr)}")
    for upper, uncertainty in DQR_BANDS:
        if dqr <= upper:
            return uncertainty
    raise AssertionError("DQR bands end at 5")


def decimal_text(value: Fraction) -> str:
    """Return a Fraction as decimal text with two places, truncated, exactly."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}.{rest * 100 // value.denominator:02d}"


def load_agribalyse(path: Path, version: str = "") -> LoadResult:
    """Read Agribalyse's synthesis CSV into mass-based factors."""
    version = version or _version_from(path.name, r"agribalyse-(\d+(?:\.\d+)*)")
    return _load(path, AGRIBALYSE, version, lambda row: _agribalyse_row(row, version))


def load_epa_supply_chain(path: Path, version: str = "") -> LoadResult:
    """Read the EPA supply-chain CO2e CSV into spend-based factors."""
    version = version or _version_from(path.name, r"_v(\d+(?:\.\d+)*)_")
    return _load(path, EPA_SUPPLY_CHAIN, version, lambda row: _epa_row(row, version))


def _agribalyse_row(row: dict[str, str], version: str) -> EmissionFactor:
    """Return the factor of one Agribalyse row, or raise InputError why not."""
    code = _required(row, "Code AGB")
    value = _non_negative(_required(row, "Changement climatique"), "climate change")
    dqr = parse_decimal(_required(row, "DQR"))
    name = row.get("LCI Name") or _required(row, "Nom du Produit en Français")
    return EmissionFactor(
        f"agribalyse-{version}:{code}",
        AGRIBALYSE,
        version,
        code,
        name.strip(),
        "mass",
        value,
        dqr_uncertainty(dqr),
        f"DQR {row['DQR'].strip()}",
    )


def _epa_row(row: dict[str, str], version: str) -> EmissionFactor:
    """Return the factor of one EPA row, or raise InputError why not."""
    code = _required(row, "2017 NAICS Code")
    if not re.fullmatch(r"\d{6}", code):
        raise InputError(f"NAICS code {code[:20]!r} is not six digits")
    unit = _required(row, "Unit")
    year = re.match(r"kg CO2e/(\d{4}) USD", unit)
    if not year:
        raise InputError(f"unit {unit[:40]!r} is not kg CO2e per USD")
    value = _non_negative(
        _required(row, "Supply Chain Emission Factors with Margins"), "factor"
    )
    return EmissionFactor(
        f"epa-sc-{version}:{code}",
        EPA_SUPPLY_CHAIN,
        version,
        code,
        _required(row, "2017 NAICS Title"),
        "spend",
        value,
        SPEND_DEFAULT_UNCERTAINTY,
        "stated default for spend-based factors",
        int(year.group(1)),
    )


def _load(
    path: Path,
    dataset: str,
    version: str,
    parse_row: Callable[[dict[str, str]], EmissionFactor],
) -> LoadResult:
    """Read a dataset CSV: every row becomes a factor or a rejection."""
    factors: list[EmissionFactor] = []
    rejected: list[Rejected] = []
    for row_number, row in _rows(path):
        try:
            factors.append(parse_row(row))
        except InputError as err:
            rejected.append(Rejected(row_number, err.detail))
    if not factors and not rejected:
        raise InputError(f"{path.name} holds no rows")
    return LoadResult(dataset, version, tuple(factors), tuple(rejected))


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (row number, row) from a UTF-8 CSV, BOM or not; header is row 1."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            for number, row in enumerate(reader, start=2):
                yield number, {k: v or "" for k, v in row.items() if k is not None}
    except UnicodeDecodeError as err:
        raise InputError(f"{path.name} is not UTF-8: {err.reason}") from err
    except csv.Error as err:
        raise InputError(f"{path.name} is not readable CSV: {err}") from err


def _required(row: dict[str, str], column: str) -> str:
    """Return a non-empty cell, or raise InputError naming the column."""
    value = row.get(column, "").strip()
    if not value:
        raise InputError(f"missing {column!r}")
    return value


def _non_negative(text: str, what: str) -> Fraction:
    """Parse a figure that must not be negative."""
    value = parse_decimal(text)
    if value < 0:
        raise InputError(f"negative {what} {text!r}")
    return value


def _version_from(filename: str, pattern: str) -> str:
    """Return the dataset version in a file name, or raise InputError."""
    match = re.search(pattern, filename)
    if not match:
        raise InputError(f"cannot tell the dataset version from {filename!r}")
    return match.group(1)
