"""Square item library exports (Items -> Export library -> CSV).

Each row is one variation and repeats its item's name, category and
description. Mapping:
- name = Item Name, variant = Variation Name; an item's only variation named
  "Regular" (Square's default) gives no variant text.
- Price empty or "variable" (priced at the register) is refused: the till
  needs a fixed price.
- Tax columns are named "Tax - <tax name> (<rate>%)" and hold Y or N: any Y
  -> "standard", all N -> "zero" (the item is sold without tax), no tax
  columns at all -> "standard".
- Weight comes from the "Weight (<unit>)" column, lb in US libraries.
- Archived Y or Sellable N makes a variation inactive (skipped unless asked).
- A missing or shared SKU becomes derive_sku(item name, variation name).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from daemon.catalog import fields
from daemon.catalog.collect import Collector
from daemon.catalog.context import ParseContext
from daemon.catalog.csvread import Row, Table
from daemon.catalog.errors import RowError
from daemon.catalog.model import ParseResult, ProductRecord
from daemon.catalog.sku import derive_sku

_log = logging.getLogger(__name__)

_WEIGHT = re.compile(r"^weight \((\w+)\)$")
MAX_SKU_CHARS = 100


_READ = frozenset({"item name", "variation name", "sku", "price", "gtin", "token",
                   "category", "reporting category", "categories", "archived",
                   "sellable"})


def keeps(column: str) -> bool:
    """Return whether the parser reads this column."""
    return column in _READ or column.startswith("tax - ") or bool(_WEIGHT.match(column))


def matches(table: Table) -> bool:
    """Return whether the header is a Square item library's."""
    return table.has("item name", "variation name", "price")


def parse(table: Table, ctx: ParseContext) -> ParseResult:
    """Turn a Square item library into one record per variation."""
    out = Collector("square", table)
    per_item = Counter(row.get("item name") for row in table.rows)
    skus = Counter(row.get("sku") for row in table.rows if row.get("sku"))
    shared = {sku for sku, n in skus.items() if n > 1}
    for sku in sorted(shared):
        out.warn(f"SKU {sku!r} is on {skus[sku]} rows: they get derived SKUs")
    taxes = [name for name in table.header if name.startswith("tax - ")]
    unit = _weight_unit(table)
    out.each(table.rows, lambda row: _variation(
        row, per_item, shared, taxes, unit, ctx, out))
    return out.finish()


def _weight_unit(table: Table) -> tuple[str, str] | None:
    """Return (column, unit) of the weight column, if the export has one."""
    for name in table.header:
        match = _WEIGHT.match(name)
        if match:
            return name, match.group(1)
    return None


def _variation(row: Row, per_item: Counter[str], shared: set[str],
               taxes: list[str], unit: tuple[str, str] | None,
               ctx: ParseContext, out: Collector) -> None:
    """Build one variation's record."""
    active = _is_active(row)
    if not active and not ctx.include_inactive:
        out.skip()
        return
    item = fields.name(row.get("item name"))
    variant = fields.clean_text(row.get("variation name"))
    if per_item[row.get("item name")] == 1 and variant.casefold() == "regular":
        variant = ""
    sku, derived = _sku(row, item, variant, shared)
    out.add(row.number, ProductRecord(
        sku=sku, name=item, variant=variant,
        price_minor=_price(row, ctx),
        tax_class=_tax_class(row, taxes),
        category=_category(row),
        parent_sku=derive_sku(item) if per_item[row.get("item name")] > 1 else "",
        weight_g=fields.weight_g(row.get(unit[0]), unit[1]) if unit else None,
        active=active,
        barcode=fields.clean_text(row.get("gtin")),
        source="square",
        extra={"token": row.get("token")} | ({"shop_sku": row.get("sku")}
                                             if derived else {}),
        sku_derived=derived,
    ))


def _category(row: Row) -> str:
    """Return Category, else the first of the comma-separated Categories."""
    single = row.get("category", "reporting category")
    return fields.leaf_category(single or row.get("categories").split(",")[0])


def _price(row: Row, ctx: ParseContext) -> int:
    """Return the fixed price; a variable (register-entered) price is refused."""
    text = row.get("price")
    if text.casefold() == "variable":
        raise RowError("variable price: give the item a fixed price for the till")
    return fields.price_minor(text, ctx.currency)


def _sku(row: Row, item: str, variant: str, shared: set[str]) -> tuple[str, bool]:
    """Return the variation's SKU and whether it had to be derived."""
    sku = fields.clean_text(row.get("sku"))
    if len(sku) > MAX_SKU_CHARS:
        raise RowError(f"SKU longer than {MAX_SKU_CHARS} characters")
    if sku and sku not in shared:
        return sku, False
    return derive_sku(item, variant), True


def _tax_class(row: Row, taxes: list[str]) -> str:
    """Return "standard" if any tax applies or none is listed, else "zero"."""
    if not taxes:
        return "standard"
    applied = [fields.flag(row.get(name), name) for name in taxes]
    return "standard" if any(applied) else "zero"


def _is_active(row: Row) -> bool:
    """Return False for archived or not-sellable variations."""
    archived = fields.flag(row.get("archived"), "Archived")
    sellable = fields.flag(row.get("sellable") or "y", "Sellable")
    return sellable and not archived
