"""Parse a catalog file of any supported shop format: bytes in, products out.

`parse_catalog` is pure: no database, no clock. It sniffs the format from
the header (Shopify, Square, WooCommerce, or Stallbox's simple CSV — see
daemon.catalog.simple), and returns every product it could read plus every
row it refused. The caller imports all or nothing unless told to skip
invalid rows; this module only reports.

Row numbers in rejections are spreadsheet row numbers: the header is row 1
and each CSV record counts one, however many lines a quoted body spans.

Errors: a file that as a whole is no catalog (too big, empty, unknown
header, hundreds of bad rows) raises CatalogError. A file that is not UTF-8
yields one rejection naming the first bad byte, its offset and its row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from types import ModuleType

from daemon.catalog import shopify, simple, square, woocommerce
from daemon.catalog.context import ParseContext
from daemon.catalog.csvread import Table, decode, read_table
from daemon.catalog.errors import CatalogError
from daemon.catalog.model import ParseResult
from daemon.catalog.sku import derive_sku
from daemon.money import Currency

__all__ = ["MAX_CATALOG_BYTES", "CatalogError", "derive_sku", "parse_catalog"]

_log = logging.getLogger(__name__)

# The largest real export we have (1458 rows with HTML bodies) is 0.75 MB;
# 20 MiB leaves room for big shops while bounding memory on a Pi.
MAX_CATALOG_BYTES = 20 * 1024 * 1024

# Order matters: each test is narrower than the ones after it.
_FORMATS: tuple[ModuleType, ...] = (shopify, square, woocommerce, simple)


def parse_catalog(data: bytes, *, currency: Currency,
                  include_inactive: bool = False,
                  max_bytes: int = MAX_CATALOG_BYTES,
                  packaging_types: frozenset[str] | None = None,
                  factor_refs: frozenset[str] | None = None) -> ParseResult:
    """Parse one catalog export into product records and rejected rows."""
    if len(data) > max_bytes:
        raise CatalogError(
            f"file is {len(data)} bytes, more than the {max_bytes} byte limit")
    text = decode(data)
    if not isinstance(text, str):
        return ParseResult(format="unknown", rejected=[text])
    formats: list[ModuleType] = []
    table = read_table(text, partial(_sniff, found=formats))
    parse: Callable[[Table, ParseContext], ParseResult] = formats[0].parse
    ctx = ParseContext(currency, include_inactive, packaging_types, factor_refs)
    result = parse(table, ctx)
    _log.debug("catalog parsed: format=%s products=%d rejected=%d skipped=%d",
              result.format, len(result.products), len(result.rejected),
              result.skipped)
    return result


def sniff_format(table: Table) -> str:
    """Return the format name the header belongs to."""
    return _module(table).__name__.rsplit(".", 1)[-1]


def _sniff(table: Table, found: list[ModuleType]) -> Callable[[str], bool]:
    """Note the file's format module; return its test of columns worth keeping."""
    found.append(_module(table))
    keeps: Callable[[str], bool] = found[0].keeps
    return keeps


def _module(table: Table) -> ModuleType:
    """Return the format module whose header test the table passes."""
    for module in _FORMATS:
        if module.matches(table):
            return module
    shown = ", ".join(table.header[:6])[:120]
    raise CatalogError(
        "not a catalog format Stallbox knows (Shopify, Square, WooCommerce or "
        f"the simple sku,name,price CSV); header starts: {shown!r}")
