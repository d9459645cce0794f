"""Shopify product exports, every header generation seen in the wild.

Layouts: 2016-era (`Published`, no `Status`), 2019+ (`Status`, `Product
Category`, `Option1 Linked To`, market price columns) and the 2024 template
(`URL handle`, `SKU`, `Price`, `Charge tax`, `Weight value (grams)`). Headers
match case-insensitively.

How rows become products:
- Rows sharing a Handle are one product; its first row with a Title carries
  the product fields (title, vendor, type, status, gift card), which variant
  rows that hold only the handle inherit.
- A row without title, price, SKU and option value is an image row: ignored.
- The variant is its option values joined by " / " ("Default Title" dropped).
- `Variant Taxable` FALSE -> tax class "zero" (the shop charges no tax on it),
  otherwise "standard"; the owner re-classes food as "reduced" after import,
  since Shopify has no notion of a reduced rate in this column.
- `Variant Grams` is grams whatever `Variant Weight Unit` says: that unit
  only chooses how Shopify displays the weight (the exports confirm it:
  250.0201143 g beside `lb` for "Jacobs 250g"). A `Variant Weight` column, as
  some third-party exports write, is read in that unit when grams are empty.
- Status draft/archived, or `Published` false where there is no Status
  column, makes a product inactive: skipped (and counted) unless asked for.
  Where Status exists, Published only says "on the online store" and is
  ignored: a product hidden online may well be sold at the stall.
- A missing SKU, or one that several rows of the file share, is replaced by
  derive_sku(handle, option values...); the shop's SKU stays in extra.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

from daemon.catalog import fields
from daemon.catalog.collect import Collector
from daemon.catalog.context import ParseContext
from daemon.catalog.csvread import Row, Table
from daemon.catalog.errors import RowError
from daemon.catalog.model import ParseResult, ProductRecord
from daemon.catalog.sku import derive_sku

_log = logging.getLogger(__name__)

HANDLE = ("handle", "url handle")
PRICE = ("variant price", "price")
SKU = ("variant sku", "sku")
GRAMS = ("variant grams", "weight value (grams)")
UNIT = ("variant weight unit", "weight unit for display")
TAXABLE = ("variant taxable", "charge tax")
BARCODE = ("variant barcode", "barcode")
PUBLISHED = ("published", "published on online store")
OPTION_VALUES = tuple(f"option{i} value" for i in (1, 2, 3))
_ACTIVE = frozenset({"", "active", "unlisted"})
_INACTIVE = frozenset({"draft", "archived"})
MAX_SKU_CHARS = 100


_READ = frozenset({*HANDLE, *PRICE, *SKU, *GRAMS, *UNIT, *TAXABLE, *BARCODE,
                   *PUBLISHED, *OPTION_VALUES, "title", "vendor", "type", "status",
                   "product category", "gift card", "variant weight"})


def keeps(column: str) -> bool:
    """Return whether the parser reads this column (bodies and images it skips)."""
    return column in _READ


def matches(table: Table) -> bool:
    """Return whether the header is a Shopify product export's."""
    has_handle = any(table.has(name) for name in HANDLE)
    return has_handle and table.has("title") and any(table.has(p) for p in PRICE)


@dataclass(slots=True)
class _Product:
    handle: str
    head: Row | None = None
    variants: list[Row] = field(default_factory=list)


def parse(table: Table, ctx: ParseContext) -> ParseResult:
    """Turn a Shopify export into one record per variant."""
    out = Collector("shopify", table)
    products = _group(table, out)
    shared = _shared_skus(products, out)
    for product in products.values():
        out.each(product.variants, partial(
            _variant, product, shared=shared, ctx=ctx, out=out))
    return out.finish()


def _group(table: Table, out: Collector) -> dict[str, _Product]:
    """Collect rows by handle; image rows are dropped, headless rows refused."""
    products: dict[str, _Product] = {}
    images = 0
    for row in table.rows:
        handle = row.get(*HANDLE)
        if not handle:
            out.reject(row.number, "missing Handle")
            continue
        product = products.setdefault(handle, _Product(handle))
        if product.head is None and row.get("title"):
            product.head = row
        if _is_variant(row):
            product.variants.append(row)
        else:
            images += 1
    if images:
        out.warn(f"{images} image-only rows ignored")
    return products


def _is_variant(row: Row) -> bool:
    """Return whether a row describes a variant rather than only an image.

    A titled row always does: Shopify puts the first variant on it, so one
    with an empty price must be refused, not dropped as an image row.
    """
    cells = (row.get("title"), row.get(*PRICE), row.get(*SKU),
               row.get(*OPTION_VALUES))
    return any(cells)


def _shared_skus(products: dict[str, _Product], out: Collector) -> set[str]:
    """Return SKUs that more than one variant row carries."""
    counts = Counter(
        row.get(*SKU) for p in products.values() for row in p.variants
        if row.get(*SKU))
    shared = {sku for sku, n in counts.items() if n > 1}
    for sku in sorted(shared):
        out.warn(f"SKU {sku!r} is on {counts[sku]} rows: they get derived SKUs")
    return shared


def _variant(product: _Product, row: Row, *, shared: set[str], ctx: ParseContext,
             out: Collector) -> None:
    """Build one variant's record from its row and its product's head row."""
    head = product.head
    if head is None:
        raise RowError(f"no row of product {product.handle!r} has a Title")
    active = _is_active(head)
    if not active and not ctx.include_inactive:
        out.skip()
        return
    options = [fields.clean_text(row.get(name)) for name in OPTION_VALUES]
    sku, derived = _sku(product, row, options, shared)
    extra = {"handle": product.handle,
             "vendor": fields.clean_text(head.get("vendor"))}
    if derived and row.get(*SKU):
        extra["shop_sku"] = fields.clean_text(row.get(*SKU))
    out.add(row.number, ProductRecord(
        sku=sku,
        name=fields.name(head.get("title")),
        price_minor=fields.price_minor(row.get(*PRICE), ctx.currency),
        tax_class="standard" if _taxable(row) else "zero",
        category=_category(head),
        variant=" / ".join(o for o in options if o and o != "Default Title"),
        parent_sku=product.handle if len(product.variants) > 1 else "",
        weight_g=_weight(row),
        gift_card=fields.flag(head.get("gift card"), "Gift Card"),
        active=active,
        barcode=fields.clean_text(row.get(*BARCODE)).lstrip("'"),
        source="shopify",
        extra=extra,
        sku_derived=derived,
    ))


def _sku(product: _Product, row: Row, options: list[str],
         shared: set[str]) -> tuple[str, bool]:
    """Return the row's SKU and whether it had to be derived."""
    shop_sku = fields.clean_text(row.get(*SKU))
    if len(shop_sku) > MAX_SKU_CHARS:
        raise RowError(f"SKU longer than {MAX_SKU_CHARS} characters")
    if shop_sku and row.get(*SKU) not in shared:
        return shop_sku, False
    values = [o for o in options if o and o != "Default Title"]
    return derive_sku(product.handle, *values), True


def _is_active(head: Row) -> bool:
    """Read Status, or Published in exports older than the Status column."""
    if "status" in head.cells:  # kept for every row when the header has it
        status = head.get("status").casefold()
        if status in _ACTIVE:
            return True
        if status in _INACTIVE:
            return False
        raise RowError(f"unknown Status {status[:20]!r}")
    return fields.flag(head.get(*PUBLISHED) or "true", "Published")


def _taxable(row: Row) -> bool:
    """Return Variant Taxable, true when the cell is empty as Shopify does."""
    return fields.flag(row.get(*TAXABLE) or "true", "Variant Taxable")


def _category(head: Row) -> str:
    """Return the product Type, else the leaf of the Product Category path."""
    kind = fields.clean_text(head.get("type"))
    return kind or fields.leaf_category(head.get("product category"))


def _weight(row: Row) -> int | None:
    """Return grams from Variant Grams, else from Variant Weight and its unit."""
    grams = row.get(*GRAMS)
    if grams:
        return fields.weight_g(grams)
    weight = row.get("variant weight")
    return fields.weight_g(weight, row.get(*UNIT) or "g") if weight else None
