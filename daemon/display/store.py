"""Creatives and measurements in the journal, and what the display reads back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from daemon.display.model import Creative
from daemon.errors import NotFoundError
from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx


def save_creative(tx: Tx, creative: Creative) -> int:
    """Journal a creative as saved and keep it in the read model."""
    data = creative.to_json()
    seq = tx.append("display.creative_saved", data).seq
    tx.execute("INSERT OR REPLACE INTO display_creatives (id, body, active, seq)"
               " VALUES (?, ?, 1, ?)", (creative.id, canonical_bytes(data), seq))
    return seq


def retire_creative(tx: Tx, creative_id: str) -> int:
    """Journal that a creative no longer shows."""
    row = tx.execute("SELECT 1 FROM display_creatives WHERE id = ? AND active = 1",
                     (creative_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no active creative {creative_id[:40]!r}")
    seq = tx.append("display.creative_retired", {"id": creative_id}).seq
    tx.execute("UPDATE display_creatives SET active = 0, seq = ? WHERE id = ?",
               (seq, creative_id))
    return seq


def record_measurements(tx: Tx, rows: Sequence[dict[str, Any]]) -> int:
    """Journal aggregated impressions and conversions and add them up."""
    seq = tx.append("display.measured", {"rows": list(rows)}).seq
    tx.executemany(
        "INSERT INTO display_stats (slot, hour, cohort, impressions, shown_s,"
        " conversions) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (slot, hour, cohort)"
        " DO UPDATE SET impressions = impressions + excluded.impressions,"
        " shown_s = shown_s + excluded.shown_s,"
        " conversions = conversions + excluded.conversions",
        [(r["slot"], r["hour"], r["cohort"], r["impressions"], r["shown_s"],
          r["conversions"]) for r in rows])
    return seq


def load_creatives(conn: sqlite3.Connection) -> list[Creative]:
    """Return the active creatives."""
    rows = conn.execute("SELECT body FROM display_creatives WHERE active = 1"
                        " ORDER BY id").fetchall()
    return [Creative.from_json(json.loads(row[0])) for row in rows]


def load_catalog(conn: sqlite3.Connection) -> dict[str, tuple[str, int]]:
    """Return {sku: (display name, price)} of the active products."""
    rows = conn.execute("SELECT sku, name, variant, price_minor FROM products"
                        " WHERE active = 1").fetchall()
    return {r[0]: (f"{r[1]} ({r[2]})" if r[2] else r[1], r[3]) for r in rows}


def load_hourly(conn: sqlite3.Connection, hour: str) -> dict[tuple[str, str], int]:
    """Return journaled impressions per slot for one hour (hourly caps)."""
    rows = conn.execute("SELECT slot, sum(impressions) FROM display_stats"
                        " WHERE hour = ? GROUP BY slot", (hour,)).fetchall()
    return {(r[0], hour): r[1] for r in rows}


def stats(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return impressions, seconds shown and conversions per slot and hour."""
    rows = conn.execute(
        "SELECT slot, hour, sum(impressions), sum(shown_s), sum(conversions)"
        " FROM display_stats GROUP BY slot, hour ORDER BY hour DESC, slot"
        " LIMIT 200").fetchall()
    return [{"slot": r[0], "hour": r[1], "impressions": r[2], "shown_s": r[3],
             "conversions": r[4]} for r in rows]
