"""Read-side queries over the journal's read models (and the reprint write)."""

from __future__ import annotations

import logging
import sqlite3
import unicodedata
from typing import Any

from daemon.errors import ConflictError, NotFoundError
from daemon.journal.store import Tx
from daemon.sales import giftcards, receipt_store
from daemon.sales.receipt import render_text
from daemon.sales.service import load_sale, receipt_from_record, sale_dict

_PRODUCT_COLUMNS = ("sku", "name", "variant", "category", "price_minor", "tax_class",
                    "weight_g", "gift_card", "packaging", "carbon_factor")
_PRODUCT_SELECT = ("p.sku, p.name, p.variant, p.category, p.price_minor, p.tax_class,"
                   " p.weight_g, p.gift_card, coalesce(b.packaging, ''),"
                   " coalesce(b.carbon_factor, '') FROM products p"
                   " LEFT JOIN product_billing b ON b.sku = p.sku")
_LOG = logging.getLogger(__name__)
_SALE_COLUMNS = ("id, seq, client_ref, created_at, tablet, total_minor, currency,"
                 " status, receipt, (SELECT body FROM events WHERE seq = sales.seq)")


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_products(conn: sqlite3.Connection, q: str, category: str,
                    limit: int) -> list[dict[str, Any]]:
    """Find active products whose text contains every word of q."""
    sql = f"SELECT {_PRODUCT_SELECT} WHERE p.active = 1"
    params: list[Any] = []
    for word in _fold(q).split()[:8]:
        sql += " AND p.search LIKE ? ESCAPE '\\'"
        params.append(_like_pattern(word))
    if category:
        sql += " AND p.category = ?"
        params.append(category)
    sql += " ORDER BY p.category, p.name, p.variant LIMIT ?"
    params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    return [_product_dict(row) for row in rows]


def _product_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    item = dict(zip(_PRODUCT_COLUMNS, row, strict=True))
    item["gift_card"] = bool(item["gift_card"])
    item["display_name"] = (f"{item['name']} ({item['variant']})" if item["variant"]
                            else item["name"])
    return item


def categories(conn: sqlite3.Connection) -> list[str]:
    """Return the distinct non-empty categories of active products."""
    rows = conn.execute("SELECT DISTINCT category FROM products WHERE active = 1"
                        " AND category != '' ORDER BY category")
    return [row[0] for row in rows]


def list_sales(conn: sqlite3.Connection, before_seq: int | None,
               limit: int) -> list[dict[str, Any]]:
    """Return up to limit sales older than before_seq, newest first."""
    sql = f"SELECT {_SALE_COLUMNS} FROM sales"
    params: list[Any] = []
    if before_seq is not None:
        sql += " WHERE seq < ?"
        params.append(before_seq)
    sql += " ORDER BY seq DESC LIMIT ?"
    params.append(limit)
    sales = []
    for row in conn.execute(sql, params).fetchall():
        try:
            sales.append(sale_dict(row, conn))
        except NotFoundError as err:  # a row no event made: hide it, not the list
            _LOG.error("sale %s left out of the list: %s; run `stallbox verify`",
                       row[0], err)
    return sales


def get_sale(conn: sqlite3.Connection, sale_id: str) -> dict[str, Any]:
    """Return one sale with its print jobs."""
    sale = load_sale(conn, sale_id)
    jobs = conn.execute("SELECT id, reprint, status, reason FROM print_jobs"
                        " WHERE sale_id = ? ORDER BY id", (sale_id,)).fetchall()
    sale["print_jobs"] = [{"id": j[0], "reprint": bool(j[1]), "status": j[2],
                           "reason": j[3]} for j in jobs]
    return sale


def receipt_record(conn: sqlite3.Connection | Any, sale_id: str, *,
                   gift_codes: bool = False) -> dict[str, Any]:
    """Return the receipt record of a sale: its event merged with its row's part.

    Gift cards it issued are masked unless ``gift_codes`` (the printer's
    original receipt only: see ``printing._job``).
    """
    record = receipt_store.load_record(conn, sale_id)
    notes = giftcards.receipt_notes(conn, sale_id, codes=gift_codes)
    if notes:
        record["notes"] = [*record.get("notes", []), *notes]
    return record


def receipt_text(conn: sqlite3.Connection, sale_id: str, columns: int,
                 codepage: str | None) -> str:
    """Render the sale's receipt as the printer prints it, in its code page."""
    receipt = receipt_from_record(receipt_record(conn, sale_id))
    return render_text(receipt, columns, codepage=codepage)


def queue_reprint(tx: Tx, sale_id: str) -> int:
    """Journal an explicit reprint request and queue its job.

    Only a completed sale has a receipt: a pending card sale is not paid yet
    and a cancelled one never was, so printing theirs would hand a customer a
    paid-looking slip for goods nobody paid (ConflictError, 409).
    """
    row = tx.execute("SELECT status FROM sales WHERE id = ?", (sale_id,)).fetchone()
    if row is not None and row[0] != "completed":
        raise ConflictError(f"sale {sale_id} is {row[0]}, not completed: it has no "
                            "receipt to reprint")
    receipt_record(tx, sale_id)
    event = tx.append("print.reprint_requested", {"sale_id": sale_id})
    cursor = tx.execute(
        "INSERT INTO print_jobs (sale_id, reprint, status, seq, updated_seq)"
        " VALUES (?, 1, 'queued', ?, ?)", (sale_id, event.seq, event.seq))
    return int(cursor.lastrowid or 0)
