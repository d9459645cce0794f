"""Revenue per live stream and display measurements, for the billing pipeline.

Both are indexed from a batch's *new* events in the transaction that stores
them (``index_events``), so a batch delivered again — whole, overlapping or
after a receiver restart — adds nothing: only events the receiver did not
hold yet are new, and every index row is keyed by the event's seq as well.

- A ``sale.completed`` with a ``live`` part (``daemon.live.pricing``) counts
  for its stream; each live line counts for its pin or flash offer with the
  quantity and amount of the sale's lines of that sku. A ``sale.refunded`` of
  such a sale takes its total off the stream's net, and its goods lines of a
  live sku the refunded quantity and amount off that offer's net.
- ``display.measured`` rows (slot, UTC hour, cohort, impressions, seconds
  shown, conversions) are summed per slot and hour; ``display.creative_saved``
  names a creative's sponsor, so slots ``c:<id>`` total per sponsor as an
  advertiser is billed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from daemon.journal.canonical import parse_canonical
from sync.receiver.model import IncomingEvent

SALE_KIND = "sale.completed"
REFUND_KIND = "sale.refunded"
MEASURED_KIND = "display.measured"
CREATIVE_KIND = "display.creative_saved"
KINDS = (SALE_KIND, REFUND_KIND, MEASURED_KIND, CREATIVE_KIND)
SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_sales (
    stall_id    TEXT    NOT NULL,
    sale_id     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    stream_id   TEXT    NOT NULL,
    currency    TEXT    NOT NULL,
    total_minor INTEGER NOT NULL,
    PRIMARY KEY (stall_id, sale_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_lines (
    stall_id     TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    sku          TEXT    NOT NULL,
    stream_id    TEXT    NOT NULL,
    offer_kind   TEXT    NOT NULL,
    offer_id     TEXT    NOT NULL,
    currency     TEXT    NOT NULL,
    qty          INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    normal_minor INTEGER NOT NULL,
    PRIMARY KEY (stall_id, seq, sku)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refund_totals (
    stall_id    TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    sale_id     TEXT    NOT NULL,
    total_minor INTEGER NOT NULL,
    PRIMARY KEY (stall_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refund_totals_sale ON refund_totals (stall_id, sale_id);
CREATE TABLE IF NOT EXISTS refund_lines (
    stall_id     TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    row          INTEGER NOT NULL,
    sale_id      TEXT    NOT NULL,
    sku          TEXT    NOT NULL,
    qty          INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (stall_id, seq, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS display_measures (
    stall_id    TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    row         INTEGER NOT NULL,
    slot        TEXT    NOT NULL,
    hour        TEXT    NOT NULL,
    cohort      TEXT    NOT NULL,
    impressions INTEGER NOT NULL,
    shown_s     INTEGER NOT NULL,
    conversions INTEGER NOT NULL,
    PRIMARY KEY (stall_id, seq, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS display_creatives (
    stall_id TEXT    NOT NULL,
    slot     TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    sponsor  TEXT    NOT NULL,
    title    TEXT    NOT NULL,
    PRIMARY KEY (stall_id, slot)
) WITHOUT ROWID;
"""
_TABLES = ("stream_sales", "stream_lines", "refund_totals", "refund_lines",
           "display_measures", "display_creatives")


def create(conn: sqlite3.Connection) -> None:
    """Create the billing tables; index the events a receiver held before them."""
    had = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.executescript(SCHEMA)
    if not set(_TABLES) <= had:
        _backfill(conn)


def _backfill(conn: sqlite3.Connection) -> None:
    marks = ",".join("?" * len(KINDS))
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in _TABLES:
            conn.execute(f"DELETE FROM {table}")
        rows = conn.execute(f"SELECT stall_id, seq, kind, body FROM events WHERE"
                            f" kind IN ({marks}) ORDER BY stall_id, seq", KINDS)
        for stall_id, seq, kind, body in rows.fetchall():
            data = parse_canonical(bytes(body))["data"]
            index_events(conn, stall_id,
                         [IncomingEvent(seq, "", kind, data, b"", b"")])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def index_events(conn: sqlite3.Connection, stall_id: str,
                 new: Iterable[IncomingEvent]) -> None:
    """Index the billing facts of newly stored events (inside their transaction)."""
    for event in new:
        if event.kind == SALE_KIND and isinstance(event.data.get("live"), dict):
            _index_live_sale(conn, stall_id, event.seq, event.data)
        elif event.kind == REFUND_KIND:
            conn.execute("INSERT OR IGNORE INTO refund_totals VALUES (?, ?, ?, ?)",
                         (stall_id, event.seq, event.data["sale_id"],
                          event.data["total_minor"]))
            conn.executemany(
                "INSERT OR IGNORE INTO refund_lines VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(stall_id, event.seq, n, event.data["sale_id"], line["sku"],
                  line["qty"], line["amount_minor"])
                 for n, line in enumerate(event.data["lines"])
                 if line.get("kind", "goods") == "goods"])
        elif event.kind == MEASURED_KIND:
            conn.executemany(
                "INSERT OR IGNORE INTO display_measures VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(stall_id, event.seq, n, r["slot"], r["hour"], r["cohort"],
                  r["impressions"], r["shown_s"], r["conversions"])
                 for n, r in enumerate(event.data["rows"])])
        elif event.kind == CREATIVE_KIND:
            data = event.data
            conn.execute(
                "INSERT INTO display_creatives VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (stall_id, slot) DO UPDATE SET seq = excluded.seq,"
                " kind = excluded.kind, sponsor = excluded.sponsor,"
                " title = excluded.title WHERE excluded.seq > display_creatives.seq",
                (stall_id, "c:" + data["id"], event.seq, data["kind"],
                 data.get("sponsor", ""), data.get("title", "")))


def _index_live_sale(conn: sqlite3.Connection, stall_id: str, seq: int,
                     data: dict[str, Any]) -> None:
    live, currency = data["live"], data["currency"]
    stream_id = live["stream_id"]
    conn.execute("INSERT OR IGNORE INTO stream_sales VALUES (?, ?, ?, ?, ?, ?)",
                 (stall_id, data["id"], seq, stream_id, currency,
                  data["total_minor"]))
    for line in live["lines"]:
        sold = [ln for ln in data["lines"] if ln["sku"] == line["sku"]
                and ln.get("kind", "goods") == "goods"]
        qty = sum(ln["qty"] for ln in sold)
        conn.execute(
            "INSERT OR IGNORE INTO stream_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stall_id, seq, line["sku"], line.get("stream_id") or stream_id,
             line["kind"], line["event_id"], currency, qty,
             sum(ln["amount_minor"] for ln in sold), line["normal_minor"] * qty))


def stream_revenue(conn: sqlite3.Connection, stall_id: str, after_seq: int,
                   upto_seq: int) -> list[dict[str, Any]]:
    """Return sales, gross, refunds and net per stream, with its pins and flashes.

    Sales count by their own seq in (after_seq, upto_seq]; refunds of stream
    sales by the refund's seq in the same range (the period they happened in).
    """
    streams: dict[tuple[str, str], dict[str, Any]] = {}
    for stream_id, currency, sales, gross in conn.execute(
            "SELECT stream_id, currency, count(*), sum(total_minor) FROM"
            " stream_sales WHERE stall_id = ? AND seq > ? AND seq <= ?"
            " GROUP BY stream_id, currency", (stall_id, after_seq, upto_seq)):
        _stream(streams, stream_id, currency).update(sales=sales, gross_minor=gross)
    for stream_id, currency, refunds, refunded in conn.execute(
            "SELECT s.stream_id, s.currency, count(*), sum(r.total_minor) FROM"
            " refund_totals AS r JOIN stream_sales AS s ON s.stall_id = r.stall_id"
            " AND s.sale_id = r.sale_id WHERE r.stall_id = ? AND r.seq > ? AND"
            " r.seq <= ? GROUP BY s.stream_id, s.currency",
            (stall_id, after_seq, upto_seq)):
        _stream(streams, stream_id, currency).update(
            refunds=refunds, refunded_minor=refunded)
    for row in conn.execute(
            "SELECT stream_id, currency, offer_kind, offer_id, sku, count(*),"
            " sum(qty), sum(amount_minor), sum(normal_minor) FROM stream_lines"
            " WHERE stall_id = ? AND seq > ? AND seq <= ? GROUP BY stream_id,"
            " currency, offer_kind, offer_id, sku ORDER BY offer_id, sku",
            (stall_id, after_seq, upto_seq)):
        _offer(streams, row[:5]).update(
            sales=row[5], qty=row[6], revenue_minor=row[7], normal_value_minor=row[8])
    for row in conn.execute(
            "SELECT l.stream_id, l.currency, l.offer_kind, l.offer_id, l.sku,"
            " sum(r.qty), sum(r.amount_minor) FROM refund_lines AS r"
            " JOIN stream_sales AS s ON s.stall_id = r.stall_id"
            " AND s.sale_id = r.sale_id JOIN stream_lines AS l"
            " ON l.stall_id = s.stall_id AND l.seq = s.seq AND l.sku = r.sku"
            " WHERE r.stall_id = ? AND r.seq > ? AND r.seq <= ? GROUP BY"
            " l.stream_id, l.currency, l.offer_kind, l.offer_id, l.sku",
            (stall_id, after_seq, upto_seq)):
        _offer(streams, row[:5]).update(refunded_qty=row[5], refunded_minor=row[6])
    out = [streams[key] for key in sorted(streams)]
    for stream in out:
        stream["net_minor"] = stream["gross_minor"] - stream["refunded_minor"]
        offers = stream["offers"]  # by event id, then sku, as before
        stream["offers"] = [offers[k] for k in sorted(offers, key=lambda k: k[1:])]
        for offer in stream["offers"]:
            offer["net_minor"] = offer["revenue_minor"] - offer["refunded_minor"]
    return out


def _offer(streams: dict[tuple[str, str], dict[str, Any]],
           key: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """Return an offer's figures in its stream (sold, refunded: each by its seq)."""
    offers = _stream(streams, key[0], key[1])["offers"]
    if key[2:] not in offers:
        offers[key[2:]] = {"kind": key[2], "event_id": key[3], "sku": key[4],
                           "sales": 0, "qty": 0, "revenue_minor": 0,
                           "normal_value_minor": 0, "refunded_qty": 0,
                           "refunded_minor": 0}
    return offers[key[2:]]  # type: ignore[no-any-return]


def _stream(streams: dict[tuple[str, str], dict[str, Any]], stream_id: str,
            currency: str) -> dict[str, Any]:
    key = (stream_id, currency)
    if key not in streams:
        streams[key] = {"stream_id": stream_id, "currency": currency, "sales": 0,
                        "gross_minor": 0, "refunds": 0, "refunded_minor": 0,
                        "offers": {}}
    return streams[key]


def display_totals(conn: sqlite3.Connection, stall_id: str, after_seq: int,
                   upto_seq: int) -> dict[str, list[dict[str, Any]]]:
    """Return impressions, seconds shown and conversions per slot and hour, and
    per sponsor (the advertiser billed), from events in (after_seq, upto_seq]."""
    rows = conn.execute(
        "SELECT m.slot, m.hour, sum(m.impressions), sum(m.shown_s),"
        " sum(m.conversions), coalesce(c.kind, ''), coalesce(c.sponsor, ''),"
        " coalesce(c.title, '') FROM display_measures AS m LEFT JOIN"
        " display_creatives AS c ON c.stall_id = m.stall_id AND c.slot = m.slot"
        " WHERE m.stall_id = ? AND m.seq > ? AND m.seq <= ? GROUP BY m.slot,"
        " m.hour ORDER BY m.hour, m.slot", (stall_id, after_seq, upto_seq))
    slots = [{"slot": r[0], "hour": r[1], "impressions": r[2], "shown_s": r[3],
              "conversions": r[4], "kind": r[5], "sponsor": r[6], "title": r[7]}
             for r in rows]
    return {"slots": slots, "sponsors": _per_sponsor(slots)}


def _per_sponsor(slots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    sponsors: dict[str, dict[str, Any]] = {}
    for slot in slots:
        if not slot["sponsor"]:
            continue
        total = sponsors.setdefault(slot["sponsor"], {
            "sponsor": slot["sponsor"], "impressions": 0, "shown_s": 0,
            "conversions": 0, "slots": []})
        for key in ("impressions", "shown_s", "conversions"):
            total[key] += slot[key]
        if slot["slot"] not in total["slots"]:
            total["slots"].append(slot["slot"])
    return [sponsors[name] for name in sorted(sponsors)]
