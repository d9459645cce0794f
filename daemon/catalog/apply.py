"""Apply a parsed catalog to the journal: all rows or none, and idempotent."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass

from daemon.catalog.model import ParseResult, ProductRecord, Rejection
from daemon.errors import InputError
from daemon.journal.store import Tx
from daemon.sales.productcache import catalog_changed

_COLUMNS = ("sku", "name", "variant", "parent_sku", "category", "price_minor",
            "tax_class", "weight_g", "gift_card", "barcode", "active")


class ImportRejected(InputError):
    """Raised when a file has invalid rows and skip-invalid was not asked for."""

    def __init__(self, rejected: list[Rejection]) -> None:
        first = rejected[0]
        super().__init__(f"{len(rejected)} row(s) rejected, nothing imported; "
                         f"first: row {first.row}: {first.reason}")
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an import did: rows accepted, products changed, rows refused."""

    imported: int
    changed: int
    rejected: list[Rejection]
    skipped: int
    format: str
    seq: int | None


def search_key(product: ProductRecord) -> str:
    """Lower-case, accent-free text a till search matches against."""
    text = " ".join((product.name, product.variant, product.sku, product.category,
                     product.barcode))
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def apply_import(tx: Tx, parsed: ParseResult, *, skip_invalid: bool) -> ImportOutcome:
    """Journal the products that differ from the catalog; refuse if rows failed."""
    if parsed.rejected and not skip_invalid:
        raise ImportRejected(parsed.rejected)
    if not parsed.products and not parsed.skipped:
        raise InputError("the file holds no products (only a header?)", field="body")
    changed = [p for p in parsed.products
               if (_row(p), _billing(p)) != _current(tx, p.sku)]
    seq = None
    if changed:
        event = tx.append("catalog.imported", {
            "format": parsed.format,
            "products": [_event_product(p) for p in changed],
        })
        seq = event.seq
        tx.executemany(
            f"INSERT OR REPLACE INTO products ({', '.join(_COLUMNS)}, search, seq)"
            f" VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})",
            [(*_row(p), search_key(p), event.seq) for p in changed])
        tx.executemany(
            "INSERT OR REPLACE INTO product_billing (sku, packaging, carbon_factor,"
            " seq) VALUES (?, ?, ?, ?)",
            [(p.sku, *_billing(p), event.seq) for p in changed])
        catalog_changed(tx, event.seq, event.hash)
    return ImportOutcome(len(parsed.products), len(changed), parsed.rejected,
                         parsed.skipped, parsed.format, seq)


def _row(p: ProductRecord) -> tuple[object, ...]:
    return (p.sku, p.name, p.variant, p.parent_sku, p.category, p.price_minor,
            p.tax_class, p.weight_g, int(p.gift_card), p.barcode, int(p.active))


def _billing(p: ProductRecord) -> tuple[str, str]:
    return (p.packaging, p.carbon_factor)


def _current(tx: Tx, sku: str) -> tuple[tuple[object, ...], tuple[str, str]] | None:
    """Return a product's stored row and billing references, or None."""
    row = tx.execute(f"SELECT {', '.join(_COLUMNS)} FROM products WHERE sku = ?",
                     (sku,)).fetchone()
    if row is None:
        return None
    billing = tx.execute("SELECT packaging, carbon_factor FROM product_billing"
                         " WHERE sku = ?", (sku,)).fetchone()
    return tuple(row), (billing[0], billing[1]) if billing else ("", "")


def _event_product(p: ProductRecord) -> dict[str, object]:
    record = asdict(p)
    record.pop("extra", None)
    return record
