"""Stallbox's own catalog CSV, for owners who keep their list in a spreadsheet.

Header (row 1) names the columns, in any order, case-insensitive:

    sku,name,price,tax_class,category,variant,weight_g,gift_card,barcode,
    packaging,carbon_factor

- name, price: required. price is in the major unit with `.` or `,` as
  decimal mark ("4.50", "4,50"; quote it or use `;` as separator when it
  holds a comma), optionally with the stall currency's symbol or code.
- sku: optional; when empty it is derive_sku(name, variant).
- tax_class: standard (default when empty), reduced, zero or exempt.
- category, variant, barcode: free text. Rows with the same name and a
  variant are variants of one product (grouped on the till).
- weight_g: whole grams, empty for none.
- gift_card: true/false, yes/no, y/n, 1/0; empty is false.
- packaging: a packaging type of the stall's config ([packaging.TYPE]) whose
  fee and deposit each unit sold carries; empty for none.
- carbon_factor: an emission factor id ("agribalyse-3.1:31008") or a category
  key of the shipped table ("honey"); empty maps the product by its category
  ([carbon.categories]) or gives it the stall's default, flagged.
Other columns are ignored (listed in warnings). UTF-8, `,` `;` or tab.
"""

from __future__ import annotations

import logging

from daemon.catalog import fields
from daemon.catalog.collect import Collector
from daemon.catalog.context import ParseContext
from daemon.catalog.csvread import Row, Table
from daemon.catalog.errors import RowError
from daemon.catalog.model import TAX_CLASSES, ParseResult, ProductRecord
from daemon.catalog.sku import derive_sku

_log = logging.getLogger(__name__)

COLUMNS = ("sku", "name", "price", "tax_class", "category", "variant",
           "weight_g", "gift_card", "barcode", "packaging", "carbon_factor")
MAX_REF_CHARS = 80
MAX_SKU_CHARS = 100


def keeps(column: str) -> bool:
    """Return whether the parser reads this column."""
    return column in COLUMNS


def matches(table: Table) -> bool:
    """Return whether the header is our own simple format's."""
    return table.has("name", "price")


def parse(table: Table, ctx: ParseContext) -> ParseResult:
    """Turn a simple CSV into one record per row."""
    out = Collector("simple", table)
    unknown = [name for name in table.header if name not in COLUMNS]
    if unknown:
        out.warn(f"columns ignored: {', '.join(unknown)}")
    out.each(table.rows, lambda row: out.add(row.number, _record(row, ctx)))
    return out.finish()


def _record(row: Row, ctx: ParseContext) -> ProductRecord:
    """Build the record of one row."""
    name = fields.name(row.get("name"))
    variant = fields.clean_text(row.get("variant"))
    sku = fields.clean_text(row.get("sku"))
    if len(sku) > MAX_SKU_CHARS:
        raise RowError(f"SKU longer than {MAX_SKU_CHARS} characters")
    return ProductRecord(
        sku=sku or derive_sku(name, variant),
        name=name,
        price_minor=fields.price_minor(row.get("price"), ctx.currency),
        tax_class=_tax_class(row.get("tax_class")),
        category=fields.clean_text(row.get("category")),
        variant=variant,
        parent_sku=derive_sku(name) if variant else "",
        weight_g=_grams(row.get("weight_g")),
        gift_card=fields.flag(row.get("gift_card"), "gift_card"),
        barcode=fields.clean_text(row.get("barcode")),
        source="simple",
        sku_derived=not sku,
        packaging=_known(row.get("packaging"), ctx.packaging_types, "packaging"),
        carbon_factor=_known(row.get("carbon_factor"), ctx.factor_refs,
                             "carbon_factor"),
    )


def _known(text: str, known: frozenset[str] | None, column: str) -> str:
    """Return a reference cell, refusing one the stall's config does not know."""
    value = fields.clean_text(text)
    if len(value) > MAX_REF_CHARS:
        raise RowError(f"{column} longer than {MAX_REF_CHARS} characters")
    if value and known is not None and value not in known:
        raise RowError(f"{column} {value[:40]!r} is not configured on this stall")
    return value


def _tax_class(text: str) -> str:
    """Return the tax class, standard when empty."""
    value = text.casefold() or "standard"
    if value not in TAX_CLASSES:
        raise RowError(f"tax_class {text[:20]!r} is not one of "
                       f"{', '.join(TAX_CLASSES)}")
    return value


def _grams(text: str) -> int | None:
    """Return whole grams; decimals are refused in a column named weight_g."""
    if text and not (text.isascii() and text.isdigit()):
        raise RowError(f"weight_g must be whole grams, got {text[:20]!r}")
    return fields.weight_g(text)
