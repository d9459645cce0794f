"""Gather what a format parser finds into one ParseResult."""

from __future__ import annotations

import logging
from collections.abc import Callable

from daemon.catalog.csvread import MAX_REJECTIONS, Row, Table
from daemon.catalog.errors import CatalogError, RowError
from daemon.catalog.model import ParseResult, ProductRecord, Rejection

_log = logging.getLogger(__name__)


class Collector:
    """Accepted products, rejected rows and counters of one parse."""

    def __init__(self, fmt: str, table: Table) -> None:
        self.result = ParseResult(format=fmt)
        self._sku_rows: dict[str, int] = {}
        for rejection in table.rejected:
            self.reject(rejection.row, rejection.reason)

    def add(self, row: int, product: ProductRecord) -> None:
        """Accept a product unless its SKU was already taken in this file."""
        first = self._sku_rows.get(product.sku)
        if first is not None:
            self.reject(row, f"duplicate SKU {product.sku!r} (also in row {first})")
            return
        self._sku_rows[product.sku] = row
        self.result.products.append(product)

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
        self.result.rejected.sort(key=lambda r: r.row)
        return self.result
