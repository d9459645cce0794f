"""Products as a sale reads them, cached in the journal writer thread.

A sale used to read its products (with their billing references) from SQLite:
about 6 % of the writer's work per sale. Only ``catalog.apply.apply_import``
writes ``products`` and ``product_billing``, always together with a
``catalog.imported`` event, so the catalog's version is that event: its
(seq, hash). The cache belongs to one journal and is touched only in its writer
thread.

Rollback. A SAVEPOINT rollback of an import, or a failed batch commit, takes
the event and the rows back, but not this memory. So a version counts only
once it is *confirmed*: an after-commit callback (run once the batch is on
disk) marks it. Until then every sale checks that the version's event is still
in the journal (one primary-key read; a rolled-back seq is either gone or
reused by another event with another hash) and starts over from the database
if it is not. A confirmed version cannot be rolled back any more, so sales
after the confirmation read nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

MAX_CACHED = 50_000  # skus, unknown ones included; cleared when full
Version = tuple[int, bytes | None]


class ProductCache:
    """One journal's cached product rows and the catalog version they are of."""

    __slots__ = ("version", "confirmed", "rows", "__weakref__")

    def __init__(self) -> None:
        self.version: Version | None = None  # None: to be read from the database
        self.confirmed: Version | None = None  # set on the loop after a commit
        self.rows: dict[str, Any] = {}  # sku -> product, None if unknown/inactive

    def confirm(self, version: Version) -> None:
        """Mark version committed (after-commit callback, on the event loop)."""
        self.confirmed = version


_CACHES: weakref.WeakKeyDictionary[Any, ProductCache] = weakref.WeakKeyDictionary()


def _cache(tx: Any) -> ProductCache | None:
    journal = getattr(tx, "_journal", None)
    if journal is None:
        return None
    cache = _CACHES.get(journal)
    if cache is None:
        cache = _CACHES[journal] = ProductCache()
    return cache


def catalog_changed(tx: Any, seq: int, digest: bytes) -> None:
    """Say, inside the importing transaction, that the catalog is now event seq."""
    cache = _cache(tx)
    if cache is None:
        return
    version: Version = (seq, digest)
    cache.rows = {}
    cache.version = version
    tx.after_commit(lambda: cache.confirm(version))


def cached_products(tx: Any, skus: Sequence[str],
                    read: Callable[[Any, Sequence[str]], dict[str, Any]]
                    ) -> dict[str, Any]:
    """Return read(conn, skus) for the skus found, from memory where possible."""
    cache = _cache(tx)
    if cache is None:
        return read(tx.conn, skus)
    if cache.version is None or cache.confirmed != cache.version:
        _check_version(tx, cache)
    rows = cache.rows
    missing = [sku for sku in skus if sku not in rows]
    if missing:
        found = read(tx.conn, missing)
        if len(rows) + len(missing) > MAX_CACHED:
            rows.clear()
        for sku in missing:
            rows[sku] = found.get(sku)
    out = {}
    for sku in skus:
        product = rows.get(sku)
        if product is not None:
            out[sku] = product
    return out


def _check_version(tx: Any, cache: ProductCache) -> None:
    """Keep the cache if its version's event is in the journal, else start over."""
    version = cache.version
    if version is not None:
        row = tx.execute("SELECT hash FROM events WHERE seq = ?",
                         (version[0],)).fetchone() if version[0] else None
        if (row[0] if row else None) == version[1]:
            tx.after_commit(lambda: cache.confirm(version))
            return
    cache.rows = {}
    cache.version = version = _current_version(tx)
    tx.after_commit(lambda: cache.confirm(version))


def _current_version(tx: Any) -> Version:
    """Return the catalog version the database holds (a scan; after rollbacks)."""
    seq = tx.execute("SELECT max(seq) FROM (SELECT max(seq) AS seq FROM products"
                     " UNION ALL SELECT max(seq) FROM product_billing)"
                     ).fetchone()[0]
    if not seq:
        return (0, None)
    row = tx.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return (seq, row[0] if row else None)
