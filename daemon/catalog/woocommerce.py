"""WooCommerce product exports (Products -> Export), headers as it writes them.

Rows: "simple" products are sold as they are; a "variable" product is only
the parent of its "variation" rows, whose Parent cell is "id:<ID>" or the
parent's SKU. Variations inherit name, category, weight and tax class
("parent") from the parent. "grouped" and "external" products are not sold
at a stall and are ignored (noted in warnings).
Mapping:
- Published 1 is active; 0 (private) and -1 (draft, or a variation of a
  draft parent) are inactive: skipped unless asked for.
- Regular price is the till price; a Sale price is kept in extra only,
  because its date range would make the import depend on the day it runs.
- Tax status "none" or "shipping" -> "zero"; otherwise Tax class "" ->
  "standard", "reduced-rate" -> "reduced", "zero-rate" -> "zero"; other
  classes are refused, since guessing a tax rate would put wrong money on
  receipts.
- The exporter guards cells starting with = + - @ by a leading apostrophe;
  it is removed again, as WooCommerce's own importer does.
- Category is the leaf of the first entry of Categories ("A > B, C" -> "B").
- A missing SKU becomes derive_sku(name, attribute values...).
"""

from __future__ import annotations

import logging
import re

from daemon.catalog import fields
from daemon.catalog.collect import Collector
from daemon.catalog.context import ParseContext
from daemon.catalog.csvread import Row, Table
from daemon.catalog.errors import RowError
from daemon.catalog.model import ParseResult, ProductRecord
from daemon.catalog.sku import derive_sku

_log = logging.getLogger(__name__)

_WEIGHT = re.compile(r"^weight \((\w+)\)$")
_UNESCAPE = ("'=", "'+", "'-", "'@")
_CATEGORY_SPLIT = re.compile(r"(?<!\\),")
_TAX_CLASSES = {"": "standard", "standard": "standard",
                "reduced-rate": "reduced", "zero-rate": "zero"}
_IGNORED_TYPES = frozenset({"grouped", "external"})
BARCODE = ("gtin, upc, ean, or isbn",)
MAX_SKU_CHARS = 100


_READ = frozenset({"id", "type", "sku", "name", "published", "tax status",
                   "tax class", "sale price", "regular price", "categories",
                   "parent", *BARCODE})
_ATTRIBUTE = re.compile(r"^attribute \d+ value\(s\)$")


def keeps(column: str) -> bool:
    """Return whether the parser reads this column."""
    return (column in _READ or bool(_ATTRIBUTE.match(column))
            or bool(_WEIGHT.match(column)))


def matches(table: Table) -> bool:
    """Return whether the header is a WooCommerce product export's."""
    return table.has("type", "name", "regular price")


def parse(table: Table, ctx: ParseContext) -> ParseResult:
    """Turn a WooCommerce export into records for simple products and variations."""
    out = Collector("woocommerce", table)
    parents = _parents(table)
    unit = _weight_unit(table)
    ignored = 0
    for row in table.rows:
        try:
            ignored += _row(row, parents, unit, ctx, out)
        except RowError as err:
            out.reject(row.number, err.detail)
    if ignored:
        out.warn(f"{ignored} grouped or external products ignored")
    return out.finish()


def cell(row: Row, *names: str) -> str:
    """Return a cell with the exporter's formula-guard apostrophe removed."""
    value = row.get(*names)
    return value[1:] if value.startswith(_UNESCAPE) else value


def _parents(table: Table) -> dict[str, Row]:
    """Index variable products by "id:<ID>" and by SKU, as Parent cells name them."""
    index: dict[str, Row] = {}
    for row in table.rows:
        if "variable" in _types(row):
            if row.get("id"):
                index[f"id:{row.get('id')}"] = row
            if cell(row, "sku"):
                index[cell(row, "sku")] = row
    return index


def _types(row: Row) -> set[str]:
    """Return the Type cell's words, e.g. {"simple", "virtual"}."""
    return {word.strip().casefold() for word in row.get("type").split(",")}


def _weight_unit(table: Table) -> tuple[str, str] | None:
    """Return (column, unit) of the "Weight (kg)" style column, if any."""
    for name in table.header:
        match = _WEIGHT.match(name)
        if match:
            return name, match.group(1)
    return None


def _row(row: Row, parents: dict[str, Row], unit: tuple[str, str] | None,
         ctx: ParseContext, out: Collector) -> int:
    """Handle one row; return 1 if it was a product type that is ignored."""
    types = _types(row)
    if types & _IGNORED_TYPES:
        return 1
    if "variable" in types:
        return 0
    if "variation" in types:
        parent = parents.get(row.get("parent"))
    elif "simple" in types:
        parent = None
    else:
        raise RowError(f"unknown Type {row.get('type')[:30]!r}")
    _product(row, parent, unit, ctx, out)
    return 0


def _product(row: Row, parent: Row | None, unit: tuple[str, str] | None,
             ctx: ParseContext, out: Collector) -> None:
    """Build the record of a simple product or of a variation."""
    active = _published(row) and (parent is None or _published(parent))
    if not active and not ctx.include_inactive:
        out.skip()
        return
    base = parent or row
    name = fields.name(cell(base, "name"))
    values = _attribute_values(row) if "variation" in _types(row) else []
    sku = fields.clean_text(cell(row, "sku"))
    if len(sku) > MAX_SKU_CHARS:
        raise RowError(f"SKU longer than {MAX_SKU_CHARS} characters")
    out.add(row.number, ProductRecord(
        sku=sku or derive_sku(name, *values),
        name=name,
        variant=" / ".join(values),
        price_minor=fields.price_minor(row.get("regular price"), ctx.currency),
        tax_class=_tax_class(row, parent),
        category=_category(cell(row, "categories") or cell(base, "categories")),
        parent_sku=_parent_key(parent),
        weight_g=_weight(row, parent, unit),
        active=active,
        barcode=fields.clean_text(cell(row, *BARCODE)),
        source="woocommerce",
        extra=_extra(row),
        sku_derived=not sku,
    ))


def _published(row: Row) -> bool:
    """Return whether Published is 1 (0 is private, -1 draft)."""
    value = row.get("published")
    if value not in ("1", "0", "-1", ""):
        raise RowError(f"Published: expected 1, 0 or -1, got {value[:10]!r}")
    return value in ("1", "")


def _attribute_values(row: Row) -> list[str]:
    """Return a variation's attribute values in column order."""
    values = []
    number = 1
    while f"attribute {number} value(s)" in row.cells:
        value = fields.clean_text(cell(row, f"attribute {number} value(s)"))
        if value:
            values.append(value)
        number += 1
    return values


def _tax_class(row: Row, parent: Row | None) -> str:
    """Map Tax status and Tax class (inheriting "parent") to a tax class."""
    source = parent if parent is not None else row
    status = (row.get("tax status") or source.get("tax status")).casefold()
    if status in ("none", "shipping"):
        return "zero"
    name = row.get("tax class").casefold()
    if name == "parent":
        name = source.get("tax class").casefold() if parent is not None else ""
    if name not in _TAX_CLASSES:
        raise RowError(f"unknown Tax class {name[:30]!r}: expected standard "
                       "(empty), reduced-rate or zero-rate")
    return _TAX_CLASSES[name]


def _category(text: str) -> str:
    """Return the leaf of the first category: "Food > Jam, Sale" -> "Jam"."""
    first = _CATEGORY_SPLIT.split(text, maxsplit=1)[0].replace("\\,", ",")
    return fields.leaf_category(first)


def _parent_key(parent: Row | None) -> str:
    """Return the key grouping a variation with its siblings."""
    if parent is None:
        return ""
    return cell(parent, "sku") or derive_sku(cell(parent, "name"))


def _weight(row: Row, parent: Row | None, unit: tuple[str, str] | None) -> int | None:
    """Return grams from the weight column, a variation falling back to its parent."""
    if unit is None:
        return None
    text = row.get(unit[0]) or (parent.get(unit[0]) if parent is not None else "")
    return fields.weight_g(text, unit[1])


def _extra(row: Row) -> dict[str, str]:
    """Keep the shop's ID and a sale price for reference."""
    extra = {"woo_id": row.get("id")}
    if row.get("sale price"):
        extra["sale_price"] = row.get("sale price")
    return extra
