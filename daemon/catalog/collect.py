"""Gather what a format parser finds into one ParseResult."""

from __future__ import annotations

import logging
from collections.abc import Callable

from daemon.catalog.csvread import MAX_REJECTIONS, Row, Table
from daemon.catalog.errors import CatalogError, RowError
from daemon.catalog.fields import MAX_NAME_CHARS
from daemon.catalog.model import ParseResult, ProductRecord, Rejection

_log = logging.getLogger(__name__)


class Collector:
    """Accepted products, rejected rows and counters of one parse."""

    def __init__(self, fmt: str, table: Table) -> None:
        self.result = ParseResult(format=fmt)
        self._sku_rows: dict[str, int] = {}
        self._free_rows: list[int] = []  # active, non-gift-card, priced 0
        for rejection in table.rejected:
            self.reject(rejection.row, rejection.reason)

    def add(self, row: int, product: ProductRecord) -> None:
        """Accept a product unless its name is too long or its SKU was taken."""
        for what, text in (("name", product.name), ("variant", product.variant)):
            if len(text) > MAX_NAME_CHARS:
                self.reject(row, f"{what} is {len(text)} characters, "
                            f"at most {MAX_NAME_CHARS} fit a receipt and the till "
                            f"(starts {text[:30]!r})")
                return
        first = self._sku_rows.get(product.sku)
        if first is not None:
            self.reject(row, f"duplicate SKU {product.sku!r} (also in row {first})")
            return
        self._sku_rows[product.sku] = row
        self.result.products.append(product)
        if product.active and product.price_minor == 0 and not product.gift_card:
            self._free_rows.append(row)

    def reject(self, row: int, reason: str) -> None:
        """Record a refused row; give up on the file past MAX_REJECTIONS."""
        self.result.rejected.append(Rejection(row, reason))
        if len(self.result.rejected) > MAX_REJECTIONS:
            raise CatalogError(
                f"more than {MAX_REJECTIONS} rows rejected (last: row {row}: "
                f"{reason}); is this the right file?")

    def skip(self, count: int = 1) -> None:
        """Count products left out on purpose (drafts, archived, unsellable)."""
        self.result.skipped += count

    def warn(self, text: str) -> None:
        """Note something the owner should know that refused no row."""
        _log.debug("catalog import note: %s", text)
        self.result.warnings.append(text)

    def each(self, rows: list[Row], handle: Callable[[Row], None]) -> None:
        """Call handle on each row, turning its RowError into a rejection."""
        for row in rows:
            try:
                handle(row)
            except RowError as err:
                self.reject(row.number, err.detail)

    def finish(self) -> ParseResult:
        """Return the result with rejections in row order."""
        if self._free_rows:
            shown = ", ".join(map(str, self._free_rows[:10]))
            more = ", ..." if len(self._free_rows) > 10 else ""
            self.warn(f"{len(self._free_rows)} active product(s) priced 0 would "
                      f"sell for nothing (rows {shown}{more}); check the price "
                      "column")
        self.result.rejected.sort(key=lambda r: r.row)
        return self.result
