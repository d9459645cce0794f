"""Property tests: whatever the bytes, the importer answers or raises CatalogError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.catalog.errors import CatalogError
from daemon.catalog.importer import parse_catalog
from daemon.catalog.model import TAX_CLASSES, ParseResult
from daemon.money import Currency

EUR = Currency.of("EUR")
SEPTEMBREA = (Path(__file__).resolve().parents[2] / "shared" / "data" / "catalogs"
              / "shopify" / "septembrea_candles_crafts_products_export.csv")
HEADERS = [
    "sku,name,price,tax_class,category,variant,weight_g,gift_card,barcode",
    "Handle,Title,Vendor,Type,Option1 Name,Option1 Value,Variant SKU,Variant Grams,"
    "Variant Price,Variant Taxable,Gift Card,Status,Variant Weight,Variant Weight Unit",
    "Token,Item Name,Variation Name,SKU,Category,Weight (lb),Price,Archived,"
    "Tax - VAT (20%)",
    "ID,Type,SKU,Name,Published,Tax status,Tax class,Weight (kg),Regular price,"
    "Categories,Parent,Attribute 1 name,Attribute 1 value(s)",
]
CELLS = st.one_of(
    st.sampled_from(["", "1.00", "-2", "4,50", "true", "FALSE", "Y", "variable",
                     "simple", "variation", "id:1", "draft", "lb", "oz", "1e999",
                     "NaN", "&amp;", "Default Title", "reduced", "'=1+1", "\x1b"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def check(data: bytes) -> None:
    """Parse; only CatalogError may escape, and what comes back is sane."""
    try:
        result = parse_catalog(data, currency=EUR, max_bytes=1 << 20)
    except CatalogError as err:
        assert err.detail
        return
    assert_sane(result)


def assert_sane(result: ParseResult) -> None:
    assert all(r.row >= 1 and r.reason for r in result.rejected)
    for product in result.products:
        assert product.sku and product.name
        assert isinstance(product.price_minor, int) and product.price_minor >= 0
        assert product.tax_class in TAX_CLASSES
        assert product.weight_g is None or product.weight_g > 0
    assert len({p.sku for p in result.products}) == len(result.products)


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.sampled_from(HEADERS), st.sampled_from([",", ";"]),
       st.lists(st.lists(CELLS, max_size=16), max_size=12), st.booleans())
def test_known_headers_with_arbitrary_cells(
    header: str, sep: str, rows: list[list[str]], final_newline: bool,
) -> None:
    lines = [header.replace(",", sep)]
    for cells in rows:
        lines.append(sep.join('"' + c.replace('"', '""') + '"' for c in cells))
    text = "\n".join(lines) + ("\n" if final_newline else "")
    check(text.encode())


@FUZZ
@given(st.data())
def test_mutated_real_export(data: st.DataObject) -> None:
    original = bytearray(SEPTEMBREA.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    check(bytes(original[:cut]))
