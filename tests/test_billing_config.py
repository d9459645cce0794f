"""Billing config sections: every bad key named, official datasets loadable."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from daemon.config import ConfigError, parse_config
from tests.conftest import SHARED_DATA

CARBON_DIR = SHARED_DATA / "carbon"


def parse(**sections: Any) -> Any:
    return parse_config({"stall": {"name": "X"}, **sections},
                        base_dir=CARBON_DIR)


@pytest.mark.parametrize(("sections", "key"), [
    ({"cash": {"rounding_step": "0.001"}}, "cash.rounding_step"),
    ({"cash": {"rounding_step": "0"}}, "cash.rounding_step"),
    ({"cash": {"rounding_mode": "nearest"}}, "cash.rounding_mode"),
    ({"cash": {"step": "0.05"}}, "cash.step"),
    ({"packaging": {"cup": {"fee": "-1"}}}, "packaging.cup.fee"),
    ({"packaging": {"cup": {"fee": 1}}}, "packaging.cup.fee"),
    ({"packaging": {"cup": {"colour": "red"}}}, "packaging.cup.colour"),
    ({"packaging": {"cup": {"material": "nope"}}}, "packaging.cup.material"),
    ({"packaging": {"cup": {"material": "epa-sc-1.2:325611"}}},
     "packaging.cup.material"),  # spend-based, not a material
    ({"packaging": {"c u p": {}}}, "packaging.c u p"),
    ({"packaging": {"cup": {"fee_tax_class": "luxury"}}},
     "packaging.cup.fee_tax_class"),
    ({"carbon": {"default_factor": "nope"}}, "carbon.default_factor"),
    ({"carbon": {"categories": {"Brot": 5}}}, "carbon.categories.Brot"),
    ({"carbon": {"categories": {"Brot": "toast"}}}, "carbon.categories.Brot"),
    ({"carbon": {"methodology_url": "ftp://x"}}, "carbon.methodology_url"),
    ({"carbon": {"usd_per_unit": "-1"}}, "carbon.usd_per_unit"),
    ({"carbon": {"usd_per_unit": "abc"}}, "carbon.usd_per_unit"),
    ({"carbon": {"materials": {"glass": {"value": "0.9"}}}},
     "carbon.materials.glass.source"),  # a figure without its source
    ({"carbon": {"materials": {"glass": {"source": "S"}}}},
     "carbon.materials.glass.value"),
    ({"carbon": {"materials": {"glass": {"value": "-1", "source": "S"}}}},
     "carbon.materials.glass.value"),
    ({"carbon": {"materials": {"glass": {"value": "1", "source": "S",
                                         "uncertainty": "2"}}}},
     "carbon.materials.glass.uncertainty"),
    ({"carbon": {"materials": {"glass": {"value": "1", "source": "S",
                                         "colour": "green"}}}},
     "carbon.materials.glass.colour"),
    ({"carbon": {"materials": {"gl ass": {"value": "1", "source": "S"}}}},
     "carbon.materials.gl ass"),
    ({"carbon": {"materials": {"glass": "0.9"}}}, "carbon.materials.glass"),
    ({"carbon": {"agribalyse_file": "missing.csv"}}, "carbon.agribalyse_file"),
    ({"contribution": {"project": "Climate neutral forest"}},
     "contribution.project"),
    ({"contribution": {"project": "Moor", "price_per_kg": "0"}},
     "contribution.price_per_kg"),
])
def test_bad_billing_keys_are_named(sections: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**sections)
    assert caught.value.key == key, caught.value


def test_defaults_round_nothing_and_estimate_in_eur() -> None:
    billing = parse().billing
    assert billing.cash.step_minor == 1
    assert billing.packaging == {} and billing.contribution is None
    assert billing.carbon is not None
    assert billing.carbon.default_factor_id == "epa-sc-1.2:339999"


def test_a_currency_without_a_conversion_has_no_estimate() -> None:
    config = parse_config({"stall": {"name": "X", "currency": "CHF"}},
                          base_dir=Path("."))
    assert config.billing.carbon is None


def test_official_agribalyse_file_extends_the_table() -> None:
    names = sorted(p.name for p in CARBON_DIR.glob("agribalyse*.csv"))
    billing = parse(carbon={"agribalyse_file": names[0]}).billing
    assert billing.carbon is not None
    assert len(billing.carbon.table.factors) > 1000
    assert billing.carbon.resolve("honey") == "agribalyse-3.1:31008"


def test_configured_material_factor_carries_its_stated_source() -> None:
    from daemon.billing.tenders import Tender
    from daemon.sales.checkout import Order, Product, price_order

    config = parse(
        carbon={"materials": {"glass": {"value": "0.9", "source": "Test LCA",
                                        "version": "7", "uncertainty": "0.2"}}},
        packaging={"jar": {"deposit": "0.50", "material": "material:glass",
                           "mass_g": 250}})
    factor = config.billing.carbon.table.factors["material:glass"]
    assert (factor.dataset, factor.version, factor.basis) == ("Test LCA", "7", "mass")
    honey = Product("H", "Honey", 850, "reduced", "", 500, False, "jar", "honey")
    priced = price_order(Order((("H", 2),), (Tender("cash", 10_000),)),
                         {"H": honey}, config.stall, config.billing)
    (line,) = priced.carbon.lines
    assert line.packaging_kg == Fraction("0.45")  # 0.9 kg/kg x 0.25 kg x 2
    assert ("Test LCA", "7") in priced.carbon.datasets
