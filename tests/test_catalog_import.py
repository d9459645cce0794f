"""Import every real shop export in ../shared/data/catalogs and the demo catalog.

Expected numbers were counted from the files with csv.DictReader, independently
of the importer; each test says how.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from daemon.catalog.importer import derive_sku, parse_catalog
from daemon.catalog.model import ParseResult, ProductRecord
from daemon.money import Currency

REPO = Path(__file__).resolve().parents[1]
CATALOGS = REPO.parent / "shared" / "data" / "catalogs"
DEMO = REPO / "daemon" / "catalog" / "demo.csv"
EUR = Currency.of("EUR")


def read(name: str) -> bytes:
    """Return a shared export's bytes; fail loudly if the shared data is absent."""
    path = CATALOGS / name
    assert path.is_file(), f"shared test data missing: {path}"
    return path.read_bytes()


def parse(name: str, **kwargs: bool) -> ParseResult:
    return parse_catalog(read(name), currency=EUR, **kwargs)


def by_sku(result: ParseResult) -> dict[str, ProductRecord]:
    return {p.sku: p for p in result.products}


def named(result: ParseResult, name: str) -> list[ProductRecord]:
    return [p for p in result.products if p.name == name]


def test_every_shared_file_is_covered() -> None:
    files = sorted(str(p.relative_to(CATALOGS)) for p in CATALOGS.rglob("*.csv"))
    assert files == sorted(EXPECTED), "a new shared export needs its own test"


# file -> (format, imported records, distinct products, skipped inactive records)
EXPECTED = {
    # 79 data rows: 68 variant rows (32 active + 36 draft priced 0.00), 11 image
    # rows; 65 handles of which 29 are active.
    "shopify/balancedbites_food_zero_prices_products_export_1.csv":
        ("shopify", 32, 29, 36),
    # 1458 rows = 1417 variant rows + 41 image rows; 288 handles, all active.
    "shopify/cakecorner_bakery_food_products_export_1.csv":
        ("shopify", 1417, 288, 0),
    # 159 rows = 111 variant rows + 48 image rows; 40 handles (2016 layout).
    "shopify/fr_parispousse_plants_products_export.csv": ("shopify", 111, 40, 0),
    # 60 rows = 58 variants + 2 image rows; 35 handles.
    "shopify/pl_krabowe_skorupki_clothing_products_export_1.csv":
        ("shopify", 58, 35, 0),
    # 12 single-variant products.
    "shopify/septembrea_candles_crafts_products_export.csv": ("shopify", 12, 12, 0),
    # 503 single-variant products, one row each.
    "shopify/uk_basarabia_grocery_food_products_export_1.csv":
        ("shopify", 503, 503, 0),
    # 14 variations of 5 items.
    "square/us_femmebot_fashion_square_item_library.csv": ("square", 14, 5, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file_counts(name: str) -> None:
    fmt, records, products, skipped = EXPECTED[name]
    result = parse(name)
    assert result.format == fmt
    assert result.rejected == []
    assert len(result.products) == records
    assert len({p.parent_sku or p.sku for p in result.products}) == products
    assert result.skipped == skipped
    assert len(by_sku(result)) == records, "SKUs must be unique"
    assert all(p.price_minor >= 0 and p.name for p in result.products)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_file_parses_identically_twice(name: str) -> None:
    assert parse(name).products == parse(name).products


def test_parispousse_2016_layout_gift_card_and_accents() -> None:
    result = parse("shopify/fr_parispousse_plants_products_export.csv")
    cards = named(result, "Carte cadeau")
    # Option values 50/100/150 are labels; the prices are what the shop charges.
    assert [(c.variant, c.price_minor) for c in cards] == [
        ("50", 1000), ("100", 2500), ("150", 5000)]
    assert all(c.gift_card and c.tax_class == "zero" for c in cards)
    assert all(c.sku_derived and c.parent_sku == "gift-card" for c in cards)
    assert named(result, "Palmier à chanvre")
    assert len([p for p in result.products if p.name.startswith("Carré")]) > 0
    pot = named(result, "Pot horticole Terre Naturelle")
    assert pot[0].variant == "S - Ø 30 cm - hauteur 28 cm"
    assert pot[0].price_minor == 3900
    # No SKU at all in this shop; empty Variant Grams means no weight.
    assert all(p.sku_derived and p.weight_g is None for p in result.products)


def test_parispousse_derived_skus_are_fixed_values() -> None:
    """Derived SKUs are what re-imports map by: they must never drift."""
    cards = named(
        parse("shopify/fr_parispousse_plants_products_export.csv"), "Carte cadeau")
    assert [c.sku for c in cards] == [
        "gift-card-50-75a444b2", "gift-card-100-15971fb4", "gift-card-150-d7db9fce"]
    assert cards[0].sku == derive_sku("gift-card", "50")


def test_basarabia_uppercase_booleans_lb_unit_and_tax_mix() -> None:
    result = parse("shopify/uk_basarabia_grocery_food_products_export_1.csv")
    jacobs = by_sku(result)["MAR-12444"]
    # Variant Grams 250.0201143 beside unit "lb": grams are grams.
    assert (jacobs.name, jacobs.price_minor, jacobs.weight_g) == (
        "Jacobs 250g", 570, 250)
    assert jacobs.tax_class == "zero" and jacobs.category == "Tea & Coffee"
    # Variant Taxable: 402 FALSE, 101 TRUE.
    assert Counter(p.tax_class for p in result.products) == {
        "zero": 402, "standard": 101}
    # 112 rows have Variant Grams 0 (no weight), 391 a real one.
    assert sum(p.weight_g is not None for p in result.products) == 391
    assert named(result, "Pringles Cheese & Onion 165g Pmp £2.99")


def test_cakecorner_entities_options_and_zero_prices() -> None:
    result = parse("shopify/cakecorner_bakery_food_products_export_1.csv")
    cake = named(result, "The Golden Truffle & Honeycomb Crumb Cake")
    assert [(c.variant, c.price_minor) for c in cake] == [
        ("6", 1800), ("8", 2800), ("10", 4000)]
    assert not any("&amp;" in p.name for p in result.products)
    two_options = [p for p in result.products if " / " in p.variant]
    assert two_options, "Flavor × Size variants join their options"
    assert named(result, "Elsa’s Winter Wonderland Cake")
    # Three active balloon/cake products are priced 0.00 in the shop.
    assert sum(p.price_minor == 0 for p in result.products) == 3
    assert all(p.sku_derived for p in result.products)


def test_septembrea_shared_skus_are_derived_for_every_holder() -> None:
    result = parse("shopify/septembrea_candles_crafts_products_export.csv")
    derived: dict[str, list[str]] = {}
    for p in result.products:
        if p.sku_derived:
            derived.setdefault(p.extra["shop_sku"], []).append(p.name)
    # PIN-SMA, WHT-SMA and BLK-SMA are each used by two different products.
    assert {k: len(v) for k, v in derived.items()} == {
        "PIN-SMA": 2, "WHT-SMA": 2, "BLK-SMA": 2}
    assert by_sku(result)["GRE-SMA"].name == "Garden Scent Beekman"
    assert len(result.warnings) == 3


def test_krabowe_gift_card_oz_grams_and_polish_values() -> None:
    result = parse("shopify/pl_krabowe_skorupki_clothing_products_export_1.csv")
    cards = named(result, "KRABOWE SKORUPKI CARD")
    assert [c.variant for c in cards] == [
        "1000,00 zł", "2500,00 zł", "5000,00 zł", "10 000,00 zł"]
    assert cards[-1].price_minor == 1_000_000
    assert all(c.gift_card and c.tax_class == "zero" for c in cards)
    shirt = by_sku(result)["3801181_8474"]
    # Variant Grams 130.407806375 (unit oz) rounds to 130 g.
    assert (shirt.variant, shirt.weight_g, shirt.price_minor) == (
        "Heather Blue / S", 130, 7459)
    assert sum(p.weight_g is not None for p in result.products) == 21


def test_balancedbites_drafts_skipped_or_included_on_request() -> None:
    name = "shopify/balancedbites_food_zero_prices_products_export_1.csv"
    active = parse(name)
    everything = parse(name, include_inactive=True)
    assert len(everything.products) == 68 and everything.skipped == 0
    drafts = [p for p in everything.products if not p.active]
    assert len(drafts) == 36 and all(p.price_minor == 0 for p in drafts)
    assert all(p.active and p.price_minor > 0 for p in active.products)
    # The draft products carry SKUs, the active ones none: all 32 derived.
    assert sum(p.sku_derived for p in active.products) == 32
    assert by_sku(everything)["PROTEINKAHK"].name == "Kahk"


def test_square_variations_taxes_and_single_variation_items() -> None:
    result = parse("square/us_femmebot_fashion_square_item_library.csv")
    pants = by_sku(result)["J259005"]
    assert (pants.name, pants.variant, pants.price_minor, pants.category) == (
        "Tahiti Cargo Pants", "washed black, Small", 13800, "CLOTHING")
    assert pants.tax_class == "zero" and pants.parent_sku
    cap = by_sku(result)["657767H"]
    # The NJ Sales Tax column says Y for the cap and the floppy hat only.
    assert cap.tax_class == "standard" and cap.variant == "Black"
    assert cap.parent_sku == ""
    assert Counter(p.tax_class for p in result.products) == {
        "zero": 12, "standard": 2}
    assert len(named(result, "Tahiti Cargo Pants")) == 8


def test_demo_catalog_parses_cleanly() -> None:
    result = parse_catalog(DEMO.read_bytes(), currency=EUR)
    assert result.format == "simple"
    assert (result.rejected, result.warnings, result.skipped) == ([], [], 0)
    assert 25 <= len(result.products) <= 40
    products = by_sku(result)
    assert products["DES-CREME-BRULEE"].name == "Crème brûlée"
    assert products["DES-CREME-BRULEE"].price_minor == 450
    assert products["FEI-BAERLAUCH"].name == "Bärlauch-Pesto"
    assert products["FEI-BAERLAUCH"].tax_class == "reduced"
    candles = [p for p in result.products if p.name == "Duftkerze Sojawachs"]
    assert len(candles) == 3 and len({p.parent_sku for p in candles}) == 1
    cards = [p for p in result.products if p.gift_card]
    assert cards and all(c.tax_class == "exempt" for c in cards)
    classes = {p.category: p.tax_class for p in result.products}
    assert classes["Keramik"] == "standard" and classes["Desserts"] == "reduced"
    assert all(p.weight_g for p in result.products if not p.gift_card)
