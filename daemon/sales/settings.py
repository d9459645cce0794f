"""Billing settings from config: cash rounding, packaging, carbon, contribution.

TOML sections (all optional; the example config documents every key):

- ``[cash]`` ``rounding_step`` (in the currency, "0.05" for CHF; "0.01" is no
  rounding) and ``rounding_mode`` (half_up, half_even, down, up).
- ``[packaging.TYPE]`` ``label``, ``fee``, ``deposit``, ``own_container_credit``
  (amounts in the currency, in the stall's pricing mode), their ``*_tax_class``,
  ``material`` (an emission factor id, mass-based) and ``mass_g``.
- ``[carbon]`` ``enabled``, ``default_factor`` (factor id or category key),
  ``usd_per_unit`` and ``price_year`` (the spend conversion), ``methodology_url``,
  ``agribalyse_file`` / ``epa_file`` (official datasets an operator supplies);
  ``[carbon.categories]`` maps a catalog category to a factor id or category key.
- ``[contribution]`` ``project``, ``price_per_kg`` (per kg CO2e) and ``tax_class``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from daemon.billing.carbon import SpendConversion
from daemon.billing.cash import NO_CASH_ROUNDING, CashRounding, cash_rounding
from daemon.billing.contribution import ContributionOffer
from daemon.billing.default_factors import (
    DEFAULT_CATEGORY,
    EPA_PRICE_YEAR,
    default_categories,
    default_factors,
)
from daemon.billing.factors import (
    EmissionFactor,
    FactorTable,
    factor_table,
    load_agribalyse,
    load_epa_supply_chain,
    parse_decimal,
)
from daemon.billing.packaging import PackagingType
from daemon.config import Config, ConfigError, _Section
from daemon.errors import InputError
from daemon.money import Currency

_LOG = logging.getLogger(__name__)
MAX_PACKAGING_TYPES = 50
MAX_CATEGORY_MAPPINGS = 500
MAX_MATERIALS = 50
MAX_DECIMAL_CHARS = 40  # "0.000000293" or "2.93e-7": figures are short
MATERIAL_PREFIX = "material:"  # factor ids of [carbon.materials.NAME]
DEFAULT_METHODOLOGY_URL = "/methodology"
# ECB euro foreign exchange reference rate, USD per EUR, 2021 annual average;
# the EPA factors are in 2021 USD. Inflation since 2021 is not taken out, so
# spend is overstated and the estimate errs high (stated on /methodology).
DEFAULT_USD_PER_UNIT: dict[str, str] = {"EUR": "1.1827"}
TAX_CLASSES = ("standard", "reduced", "zero", "exempt")


@dataclass(frozen=True, slots=True)
class CarbonSettings:
    """The factor table, how products map to it, and the spend conversion."""

    table: FactorTable
    categories: Mapping[str, str]  # catalog category (casefolded) -> factor id
    default_factor_id: str
    conversion: SpendConversion
    methodology_url: str
    category_keys: Mapping[str, str] = field(default_factory=dict)
    # Factor choice per (catalog reference, category, has mass): see
    # daemon.sales.checkout._choice. Filled as products sell.
    choices: dict[tuple[str, str, bool], Any] = field(
        default_factory=dict, compare=False, repr=False)

    def resolve(self, ref: str) -> str | None:
        """Return the factor id a reference names (id or category key), or None."""
        if ref in self.table.factors:
            return ref
        return self.category_keys.get(ref.casefold())

    def references(self) -> frozenset[str]:
        """Return every reference a catalog's carbon_factor column may hold."""
        return frozenset(self.table.factors) | frozenset(self.category_keys)


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """Everything the sale flow needs beyond the stall's identity and tax."""

    cash: CashRounding = NO_CASH_ROUNDING
    packaging: Mapping[str, PackagingType] = field(default_factory=dict)
    carbon: CarbonSettings | None = None
    contribution: ContributionOffer | None = None


def parse_billing(
    data: Mapping[str, Any], currency: Currency, base_dir: Path
) -> BillingSettings:
    """Check the billing sections of a parsed config; ConfigError names the key."""
    cash = _parse_cash(_Section("cash", data.get("cash", {})), currency)
    packaging = _parse_packaging(data.get("packaging", {}), currency)
    carbon = _parse_carbon(_Section("carbon", data.get("carbon", {})), currency,
                           base_dir)
    if carbon is not None:
        _check_materials(packaging, carbon.table)
    contribution = _parse_contribution(
        _Section("contribution", data.get("contribution", {})), currency)
    return BillingSettings(cash, packaging, carbon, contribution)


def _amount(sec: _Section, key: str, currency: Currency, default: str = "0") -> int:
    """Read an amount in the stall currency ("0.10") as minor units >= 0."""
    text = sec.get(key, str, default)
    try:
        value = currency.parse(text)
    except InputError as err:
        raise ConfigError(f"{sec.name}.{key}", err.detail) from err
    if value < 0:
        raise ConfigError(f"{sec.name}.{key}", "must not be negative")
    return value


def _parse_cash(sec: _Section, currency: Currency) -> CashRounding:
    """Read [cash]: the rounding step and mode of the cash part."""
    default_step = currency.format(1, decimal_sep=".")
    step = sec.get("rounding_step", str, default_step)
    mode = sec.get("rounding_mode", str, "half_up")
    try:
        rule = cash_rounding(currency, step, mode)
    except InputError as err:
        key = "rounding_mode" if "mode" in err.detail else "rounding_step"
        raise ConfigError(f"cash.{key}", err.detail) from err
    sec.check_unknown()
    return rule


def _parse_packaging(table: Any, currency: Currency) -> dict[str, PackagingType]:
    """Read every [packaging.TYPE] table."""
    if not isinstance(table, dict):
        raise ConfigError("packaging", "must be a table of [packaging.TYPE] tables")
    if len(table) > MAX_PACKAGING_TYPES:
        raise ConfigError("packaging", f"at most {MAX_PACKAGING_TYPES} types")
    return {key: _packaging_type(key, value, currency) for key, value in table.items()}


def _packaging_type(key: str, table: Any, currency: Currency) -> PackagingType:
    """Read one [packaging.TYPE] table."""
    if not key or len(key) > 40 or not all(c.isalnum() or c in "-_" for c in key):
        raise ConfigError(f"packaging.{key[:40]}",
                          "type names are 1-40 letters, digits, '-' or '_'")
    sec = _Section(f"packaging.{key}", table)
    label = sec.get("label", str, key.replace("_", " ").capitalize())
    if not label.strip() or len(label) > 40:
        raise ConfigError(f"{sec.name}.label", "must be 1 to 40 characters")
    kind = PackagingType(
        key, label,
        fee_minor=_amount(sec, "fee", currency),
        fee_tax_class=sec.choice("fee_tax_class", TAX_CLASSES, "standard"),
        deposit_minor=_amount(sec, "deposit", currency),
        deposit_tax_class=sec.choice("deposit_tax_class", TAX_CLASSES, "exempt"),
        own_container_credit_minor=_amount(sec, "own_container_credit", currency),
        credit_tax_class=sec.choice("credit_tax_class", TAX_CLASSES, "standard"),
        material=sec.get("material", str, ""),
        mass_g=sec.int_range("mass_g", 0, 100_000, 0),
    )
    sec.check_unknown()
    return kind


def _parse_carbon(sec: _Section, currency: Currency,
                  base_dir: Path) -> CarbonSettings | None:
    """Read [carbon]; None when disabled or when no spend conversion is known."""
    enabled = sec.get("enabled", bool, True)
    table = _factor_table(sec, base_dir)
    keys = {k.casefold(): v for k, v in default_categories().items()}
    categories = _categories(sec, table, keys)
    default_ref = sec.get("default_factor", str, DEFAULT_CATEGORY)
    default = _ref("carbon.default_factor", default_ref, table, keys)
    conversion = _conversion(sec, currency)
    url = sec.get("methodology_url", str, DEFAULT_METHODOLOGY_URL)
    if len(url) > 200 or not url.startswith(("/", "http://", "https://")):
        raise ConfigError("carbon.methodology_url",
                          "must be a path (/methodology) or an http(s) URL")
    sec.check_unknown()
    if not enabled or conversion is None:
        if enabled:
            _LOG.warning("no [carbon] usd_per_unit for %s: carbon estimate off",
                         currency.code)
        return None
    return CarbonSettings(table, categories, default, conversion, url, keys)


def _factor_table(sec: _Section, base_dir: Path) -> FactorTable:
    """Return the shipped factors plus any official dataset files configured."""
    factors: dict[str, EmissionFactor] = {f.factor_id: f for f in default_factors()}
    loaders = (("agribalyse_file", load_agribalyse),
               ("epa_file", load_epa_supply_chain))
    for key, loader in loaders:
        name = sec.get(key, str, "")
        if not name:
            continue
        try:
            loaded = loader(base_dir / name)
        except (InputError, OSError) as err:
            raise ConfigError(f"carbon.{key}", str(err)) from err
        _LOG.info("%s %s: %d factors, %d rows refused", loaded.dataset,
                  loaded.version, len(loaded.factors), len(loaded.rejected))
        factors.update({f.factor_id: f for f in loaded.factors})
    factors.update({f.factor_id: f for f in _materials(sec)})
    return factor_table(factors.values())


def _materials(sec: _Section) -> list[EmissionFactor]:
    """Read [carbon.materials.NAME]: packaging material factors with their source.

    No dataset Stallbox reads gives kg CO2e per kg of glass, paper or plastic,
    so none ships; a stall names its own, each with the source it comes from,
    which the receipt's data line and the methodology page then show.
    """
    raw = sec.get("materials", dict, {})
    if len(raw) > MAX_MATERIALS:
        raise ConfigError("carbon.materials", f"at most {MAX_MATERIALS}")
    return [_material(key, table) for key, table in raw.items()]


def _material(key: str, table: Any) -> EmissionFactor:
    """Read one [carbon.materials.NAME] table as a mass-based factor."""
    name = f"carbon.materials.{key[:40]}"
    if not key or len(key) > 40 or not all(c.isalnum() or c in "-_" for c in key):
        raise ConfigError(name, "material names are 1-40 letters, digits, '-' or '_'")
    if not isinstance(table, dict):
        raise ConfigError(name, "must be a table")
    sec = _Section(name, table)
    value = _decimal(sec, "value", "")
    uncertainty = _decimal(sec, "uncertainty", "0.5")
    source = sec.get("source", str, "").strip()
    if not 1 <= len(source) <= 120:
        raise ConfigError(f"{name}.source", "name the source of the figure "
                          "(1 to 120 characters): there is no default")
    if not Fraction(0) < uncertainty <= 1:
        raise ConfigError(f"{name}.uncertainty", "must be above 0 and at most 1")
    version = sec.get("version", str, "")[:40]
    record = sec.get("record", str, "")[:80]
    sec.check_unknown()
    return EmissionFactor(f"{MATERIAL_PREFIX}{key}", source, version, record,
                          key.replace("_", " "), "mass", value, uncertainty,
                          "stated in the stall's config")


def _decimal(sec: _Section, key: str, default: str) -> Fraction:
    """Read a non-negative decimal figure given as text ("0.9")."""
    text = sec.get(key, str, default)
    if len(text) > MAX_DECIMAL_CHARS:  # Fraction() of 5000 digits raises ValueError
        raise ConfigError(f"{sec.name}.{key}", "must be 0 to 1000000, "
                          f"at most {MAX_DECIMAL_CHARS} characters")
    try:
        value = parse_decimal(text)
    except InputError as err:
        raise ConfigError(f"{sec.name}.{key}", err.detail) from err
    if value < 0 or value > 10**6:
        raise ConfigError(f"{sec.name}.{key}", "must be 0 to 1000000")
    return value


def _ref(key: str, ref: str, table: FactorTable, keys: Mapping[str, str]) -> str:
    """Return the factor id a config reference names, or raise naming the key."""
    factor_id = ref if ref in table.factors else keys.get(ref.casefold())
    if factor_id is None:
        raise ConfigError(key,
                          f"{ref[:60]!r} is neither a factor id nor a category")
    return factor_id


def _categories(sec: _Section, table: FactorTable,
                keys: Mapping[str, str]) -> dict[str, str]:
    """Read [carbon.categories]: catalog category -> factor id."""
    raw = sec.get("categories", dict, {})
    if len(raw) > MAX_CATEGORY_MAPPINGS:
        raise ConfigError("carbon.categories", f"at most {MAX_CATEGORY_MAPPINGS}")
    out = {}
    for category, ref in raw.items():
        if not isinstance(ref, str):
            raise ConfigError(f"carbon.categories.{category}", "must be a string")
        out[category.casefold()] = _ref(f"carbon.categories.{category[:40]}", ref,
                                        table, keys)
    return out


def _conversion(sec: _Section, currency: Currency) -> SpendConversion | None:
    """Read the spend conversion: USD of the price year per currency unit."""
    text = sec.get("usd_per_unit", str, DEFAULT_USD_PER_UNIT.get(currency.code, ""))
    year = sec.int_range("price_year", 1990, 2100, EPA_PRICE_YEAR)
    if not text:
        return None
    if len(text) > MAX_DECIMAL_CHARS:
        raise ConfigError("carbon.usd_per_unit", "must be a positive number, "
                          f"at most {MAX_DECIMAL_CHARS} characters")
    try:
        rate = parse_decimal(text)
    except InputError as err:
        raise ConfigError("carbon.usd_per_unit", err.detail) from err
    if not Fraction(0) < rate < 10**6:
        raise ConfigError("carbon.usd_per_unit", "must be a positive number")
    return SpendConversion(currency.code, year, rate)


def _check_materials(packaging: Mapping[str, PackagingType],
                     table: FactorTable) -> None:
    """Refuse a packaging material that is not a mass-based factor."""
    for kind in packaging.values():
        if not kind.material:
            continue
        factor = table.factors.get(kind.material)
        if factor is None or factor.basis != "mass":
            raise ConfigError(f"packaging.{kind.key}.material",
                              f"{kind.material[:60]!r} is not a mass-based "
                              "emission factor id")
        if not kind.mass_g:  # the factor is per kg: without a mass it would add 0
            raise ConfigError(f"packaging.{kind.key}.mass_g", "is required with "
                              "material: the mass per unit in grams, 1 to 100000")


def _parse_contribution(sec: _Section,
                        currency: Currency) -> ContributionOffer | None:
    """Read [contribution]; None when no project is named."""
    project = sec.get("project", str, "")
    price = _amount(sec, "price_per_kg", currency, "0")
    tax_class = sec.choice("tax_class", TAX_CLASSES, "exempt")
    sec.check_unknown()
    if not project:
        return None
    try:
        return ContributionOffer(project[:80], price, tax_class)
    except InputError as err:
        raise ConfigError(f"contribution.{(err.field or 'project').split('.')[-1]}",
                          err.detail) from err


def catalog_checks(config: Config) -> dict[str, frozenset[str] | None]:
    """Return what a catalog import checks its packaging and carbon columns by."""
    carbon = config.billing.carbon
    return {"packaging_types": frozenset(config.billing.packaging),
            "factor_refs": carbon.references() if carbon else None}
