"""Replays of the read models other than sales: state kept per key, compared
with the whole table when the walk ends.

Each observer rebuilds its table's rows from the events alone, the way the
code that writes them does, and then reads the table once: a row that
differs, a row no event made and a row an event made but the table lacks are
each named by the seq of the event that last set the row (or the row's own
seq column). State is one small tuple per row, except ``print_jobs``, which
has a row per sale: there the rows are compared as a keyed multiset digest
(see ``daemon.trust.replay``), with per-job state in flat arrays, and the
rows are read again one by one only when the digests differ.

Covered: products, product_billing, tablets, pairing_codes, shifts, refunds,
refund_lines, print_jobs, print_job_refunds, email_receipts, shredded_days,
display_creatives, display_stats, sync_cursor, live_integrations.
The list of the rest, and why, is in docs/trust.md ("What the replay covers").
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterator
from functools import partial
from itertools import chain
from typing import Any

from daemon.journal.canonical import canonical_bytes
from daemon.journal.verify import Fault, has_table

Row = tuple[Any, ...]
FETCH_ROWS = 4096
REVOKED, EXPIRED = 1, 2  # daemon.lan.sessions


def _stream(conn: sqlite3.Connection, sql: str) -> Iterator[Row]:
    """Return the rows of sql, FETCH_ROWS a fetch, with no Python frame per row."""
    cursor = conn.execute(sql)
    return chain.from_iterable(iter(partial(cursor.fetchmany, FETCH_ROWS), []))


def _as_bytes(value: Any) -> Any:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class _Keyed:
    """Rows kept by key as the events make them; compared at the end."""

    kinds: frozenset[str] = frozenset()
    table = ""
    sql = ""  # selects the key columns first, in the order of `row`

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[Any, tuple[Row, int]] = {}

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any],
             digest: bytes) -> Fault | None:
        return self.apply(seq, ts, kind, record["data"])

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        raise NotImplementedError

    def key(self, row: Row) -> Any:
        return row[0]

    def same(self, stored: Row, wanted: Row) -> bool:
        return stored == wanted

    def finish(self) -> Fault | None:
        wanted = dict(self.rows)
        if not has_table(self.conn, self.table):  # a journal older than the table
            if not wanted:
                return None
            row, seq = min(wanted.values(), key=lambda x: x[1])
            return seq, f"{self.table} is missing, yet events made rows of it"
        for stored in _stream(self.conn, self.sql):
            key = self.key(stored)
            found = wanted.pop(key, None)
            if found is None:
                return (_seq_of(stored), f"{self.table} has a row ({key!r}) that no "
                        "event made")
            if not self.same(stored, found[0]):
                return found[1], f"{self.table} row {key!r} differs from its events"
        if wanted:
            row, seq = min(wanted.values(), key=lambda x: x[1])
            return seq, f"{self.table} lacks the row {self.key(row)!r} its events made"
        return None


def _seq_of(row: Row) -> int:
    """Return the seq column of a stored row (always its last column here)."""
    return row[-1] if isinstance(row[-1], int) else 0


_PRODUCT_FIELDS = ("sku", "name", "variant", "parent_sku", "category", "price_minor",
                   "tax_class", "weight_g", "gift_card", "barcode", "active")


class ProductsReplay(_Keyed):
    """products and product_billing: the last catalog.imported row of each sku."""

    kinds = frozenset({"catalog.imported"})
    table = "products"
    sql = (f"SELECT {', '.join(_PRODUCT_FIELDS)}, search, seq FROM products")

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.billing = _Billing(conn)

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        from daemon.catalog.apply import search_key
        from daemon.catalog.model import ProductRecord

        for product in data["products"]:
            record = ProductRecord(**product)
            row = (*(product[f] for f in _PRODUCT_FIELDS[:8]), int(record.gift_card),
                   record.barcode, int(record.active), search_key(record), seq)
            self.rows[record.sku] = (row, seq)
            self.billing.rows[record.sku] = (
                (record.sku, record.packaging, record.carbon_factor, seq), seq)
        return None

    def finish(self) -> Fault | None:
        return super().finish() or self.billing.finish()


class _Billing(_Keyed):
    table = "product_billing"
    sql = "SELECT sku, packaging, carbon_factor, seq FROM product_billing"


class TabletsReplay(_Keyed):
    """tablets: paired, then revoked (by seq) or expired at a shift close.

    A shift close expires every live tablet but the one closing it, which the
    event does not name: a tablet live at an expiry may be live or expired.
    """

    kinds = frozenset({"tablet.paired", "tablet.revoked", "tablets.expired"})
    table = "tablets"
    sql = "SELECT seq, token_hash, name, paired_at, revoked, seq FROM tablets"

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        if kind == "tablet.paired":
            self.rows[seq] = ((seq, data["token_hash"], data["name"], ts, 0, seq), seq)
        elif kind == "tablet.revoked":
            row = self.rows.get(data["tablet_seq"])
            if row is None:
                return seq, "tablet.revoked names a tablet that was never paired"
            self.rows[row[0][0]] = ((*row[0][:4], REVOKED, row[0][5]), seq)
        else:
            for key, (row, at) in list(self.rows.items()):
                if row[4] == 0:
                    self.rows[key] = ((*row[:4], -1, row[5]), at)  # live or expired
        return None

    def same(self, stored: Row, wanted: Row) -> bool:
        if wanted[4] == -1:
            return stored[:4] == wanted[:4] and stored[4] in (0, EXPIRED)
        return stored == wanted


class PairingCodesReplay(_Keyed):
    """pairing_codes: one row per pairing.code_issued, by seq.

    The code's hash is not journaled (only its expiry), and a redeemed code
    is not named by its tablet.paired: a row is matched by its seq and expiry,
    and at most as many codes are used as tablets were paired.
    """

    kinds = frozenset({"pairing.code_issued", "tablet.paired"})
    table = "pairing_codes"
    sql = "SELECT seq, expires_at, used, seq FROM pairing_codes"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.paired = 0

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        if kind == "tablet.paired":
            self.paired += 1
        else:
            self.rows[seq] = ((seq, data["expires_at"]), seq)
        return None

    def same(self, stored: Row, wanted: Row) -> bool:
        return stored[:2] == wanted and stored[2] in (0, 1)

    def finish(self) -> Fault | None:
        used = self.conn.execute("SELECT COUNT(*) FROM pairing_codes WHERE used = 1")
        count = used.fetchone()[0]
        self.rows = {k: v for k, v in self.rows.items() if _exists(self.conn, k)}
        fault = super().finish()  # a code re-issued under the same hash replaced one
        if fault is None and count > self.paired:
            return 0, f"pairing_codes has {count} used codes for {self.paired} pairings"
        return fault


def _exists(conn: sqlite3.Connection, seq: int) -> bool:
    row = conn.execute("SELECT 1 FROM pairing_codes WHERE seq = ?", (seq,)).fetchone()
    return row is not None


class ShiftsReplay(_Keyed):
    """shifts: one row per shift.closed, the Z report as stored."""

    kinds = frozenset({"shift.closed"})
    table = "shifts"
    sql = ("SELECT seq, client_ref, closed_at, first_seq, last_seq, report, seq"
           " FROM shifts")

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        report = {**data, "seq": seq, "closed_at": ts}
        self.rows[seq] = ((seq, data.get("client_ref"), ts, data["first_seq"], seq,
                           canonical_bytes(report), seq), seq)
        return None

    def same(self, stored: Row, wanted: Row) -> bool:
        client_ok = wanted[1] is None or stored[1] == wanted[1]
        return (client_ok and stored[2:5] == wanted[2:5]
                and _as_bytes(stored[5]) == wanted[5] and stored[6] == wanted[6])


class RefundsReplay(_Keyed):
    """refunds and refund_lines: reserved, completed or failed by their events.

    A card refund's stored record also gathers what the terminal said (card
    part, slip lines) without an event of its own: for refunds that are not
    completed only the columns are compared, not the record.
    """

    kinds = frozenset({"refund.pending", "sale.refunded", "refund.failed"})
    table = "refunds"
    sql = ("SELECT id, sale_id, seq, client_ref, created_at, tablet, total_minor,"
           " record FROM refunds")

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.lines = _RefundLines(conn)

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        refund_id = data["id"]
        if kind == "refund.failed":
            self.lines.rows = {k: v for k, v in self.lines.rows.items()
                               if k[0] != refund_id}
            return None
        known = self.rows.get(refund_id)
        created = known[0][4] if known else ts
        record = None
        if kind == "sale.refunded":
            record = canonical_bytes({**data, "seq": seq, "created_at": created})
        self.rows[refund_id] = ((refund_id, data["sale_id"], seq, data["client_ref"],
                                 created, data["tablet"], data["total_minor"],
                                 record), seq)
        for line in data["lines"]:
            key = (refund_id, line["line"])
            self.lines.rows[key] = ((refund_id, data["sale_id"], line["line"],
                                     line["qty"], line["amount_minor"]), seq)
        return None

    def same(self, stored: Row, wanted: Row) -> bool:
        if stored[:7] != wanted[:7]:
            return False
        return wanted[7] is None or _as_bytes(stored[7]) == wanted[7]

    def finish(self) -> Fault | None:
        return super().finish() or self.lines.finish()


class _RefundLines(_Keyed):
    table = "refund_lines"
    sql = "SELECT refund_id, sale_id, line_index, qty, amount_minor FROM refund_lines"

    def key(self, row: Row) -> Any:
        return (row[0], row[2])


_PRINT_STATUS = {"print.started": "printing", "print.done": "printed",
                 "print.interrupted": "interrupted"}
_STATUS_CODE = {"queued": 0, "printing": 1, "printed": 2, "interrupted": 3}
_STATUS_NAME = {code: name for name, code in _STATUS_CODE.items()}


class PrintJobsReplay:
    """print_jobs and print_job_refunds, from the events that queue and move jobs.

    Jobs are numbered in the order their events queued them (print_jobs ids
    are rowids and no job is ever deleted). Queued by: sale.completed (its
    receipt), sale.refunded (its slip), print.reprint_requested (a reprint, of
    a slip when it names a refund, automatic after a cut-off job); moved by
    print.started, print.done and print.interrupted. A job is compared when
    its event comes (what never changes) and at the end (its state, kept in
    flat arrays: a few bytes per job). A receipt job's sale is the sale row
    at the job's seq, which the sales replay ties to its event, so sale
    bodies need not be decoded here.
    """

    kinds = frozenset({"sale.completed", "sale.refunded", "print.reprint_requested",
                       *_PRINT_STATUS})
    unparsed = frozenset({"sale.completed"})
    table = "print_jobs"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._jobs = _stream(conn, "SELECT j.id, j.sale_id, j.reprint, j.automatic,"
                             " j.seq, s.id FROM print_jobs j LEFT JOIN sales s"
                             " ON s.seq = j.seq ORDER BY j.id")
        self.updated, self.status = array("q"), array("b")
        self.reasons: dict[int, str] = {}
        self.slips: dict[int, str] = {}

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any],
             digest: bytes) -> Fault | None:
        data = record["data"]
        if kind in _PRINT_STATUS:
            job = data.get("job_id")
            if not isinstance(job, int) or not 1 <= job <= len(self.status):
                return seq, f"{kind} names print job {job!r}, which was never queued"
            self.status[job - 1] = _STATUS_CODE[_PRINT_STATUS[kind]]
            self.updated[job - 1] = seq
            self.reasons[job] = data.get("reason", "")
            return None
        job = len(self.status) + 1
        stored = next(self._jobs, None)
        if stored is None or stored[0] != job:
            return seq, f"print_jobs lacks job {job}, which this {kind} queued"
        self.updated.append(seq)
        self.status.append(0)
        if kind == "sale.completed":
            wanted = (job, stored[5], 0, 0, seq)
        else:
            reprint = int(kind == "print.reprint_requested")
            wanted = (job, data["sale_id"], reprint,
                      int("after_interrupted_job" in data), seq)
            if kind == "sale.refunded" or "refund_id" in data:
                self.slips[job] = data["id" if kind == "sale.refunded"
                                       else "refund_id"]
        if stored[:5] != wanted:
            return seq, f"print_jobs row {job} differs from the {kind} that queued it"
        return None

    def finish(self) -> Fault | None:
        extra = next(self._jobs, None)
        if extra is not None:
            return extra[4], f"print_jobs has a row ({extra[0]}) that no event made"
        rows = _stream(self.conn, "SELECT id, status, reason, updated_seq"
                       " FROM print_jobs ORDER BY id")
        for job, status, reason, updated in rows:
            i = job - 1
            wanted = (_STATUS_NAME[self.status[i]], self.reasons.get(job, ""),
                      self.updated[i])
            if (status, reason, updated) != wanted:
                return self.updated[i], f"print_jobs row {job} differs from its events"
        slips = dict(self.conn.execute("SELECT job_id, refund_id"
                                       " FROM print_job_refunds"))
        if slips != self.slips:
            job = min(set(slips.items()) ^ set(self.slips.items()))[0]
            seq = self.updated[job - 1] if 1 <= job <= len(self.updated) else 0
            return seq, f"print_job_refunds differs from its events at job {job}"
        return None


class EmailReceiptsReplay(_Keyed):
    """email_receipts and shredded_days: requested, then sent or failed."""

    kinds = frozenset({"receipt.email_requested", "receipt.email_sent",
                       "receipt.email_failed", "datakey.shredded"})
    table = "email_receipts"
    sql = ("SELECT sale_id, day, token, status, attempts, error, seq, updated_seq"
           " FROM email_receipts")

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.days = _ShreddedDays(conn)

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        if kind == "datakey.shredded":
            self.days.rows.setdefault(data["day"], ((data["day"], seq), seq))
            return None
        sale_id = data["sale_id"]
        if kind == "receipt.email_requested":
            self.rows[sale_id] = ((sale_id, data["day"], data["token"], "queued", 0,
                                   "", seq, seq), seq)
            return None
        known = self.rows.get(sale_id)
        if known is None:
            return seq, f"{kind} for sale {sale_id!r}, whose e-mail was never asked"
        row = known[0]
        if kind == "receipt.email_sent":
            state = ("sent", data["attempt"], "")
        else:
            state = ("failed" if data["final"] else "queued", data["attempt"],
                     data["reason"])
        self.rows[sale_id] = ((*row[:3], *state, row[6], seq), seq)
        return None

    def finish(self) -> Fault | None:
        return super().finish() or self.days.finish()


class _ShreddedDays(_Keyed):
    table = "shredded_days"
    sql = "SELECT day, seq FROM shredded_days"


class DisplayReplay(_Keyed):
    """display_creatives (saved, retired) and display_stats (sums of measures)."""

    kinds = frozenset({"display.creative_saved", "display.creative_retired",
                       "display.measured"})
    table = "display_creatives"
    sql = "SELECT id, body, active, seq FROM display_creatives"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.stats = _DisplayStats(conn)

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        if kind == "display.creative_saved":
            self.rows[data["id"]] = ((data["id"], canonical_bytes(data), 1, seq), seq)
        elif kind == "display.creative_retired":
            known = self.rows.get(data["id"])
            if known is None:
                return seq, "display.creative_retired names an unknown creative"
            self.rows[data["id"]] = ((*known[0][:2], 0, seq), seq)
        else:
            for r in data["rows"]:
                key = (r["slot"], r["hour"], r["cohort"])
                old = self.stats.rows.get(key, ((*key, 0, 0, 0), seq))[0]
                self.stats.rows[key] = ((*key, old[3] + r["impressions"],
                                         old[4] + r["shown_s"],
                                         old[5] + r["conversions"]), seq)
        return None

    def same(self, stored: Row, wanted: Row) -> bool:
        return (stored[0], _as_bytes(stored[1]), *stored[2:]) == wanted

    def finish(self) -> Fault | None:
        return super().finish() or self.stats.finish()


class _DisplayStats(_Keyed):
    table = "display_stats"
    sql = ("SELECT slot, hour, cohort, impressions, shown_s, conversions"
           " FROM display_stats")

    def key(self, row: Row) -> Any:
        return row[:3]


class SyncCursorReplay(_Keyed):
    """sync_cursor: the last sync.acked event (one row, id 1)."""

    kinds = frozenset({"sync.acked"})
    table = "sync_cursor"
    sql = "SELECT id, acked_seq, event_seq FROM sync_cursor"

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        self.rows[1] = ((1, data["acked_seq"], seq), seq)
        return None



class LiveIntegrationsReplay(_Keyed):
    """live_integrations: one row per live.integration_added."""

    kinds = frozenset({"live.integration_added"})
    table = "live_integrations"
    sql = "SELECT name, seq FROM live_integrations"

    def apply(self, seq: int, ts: str, kind: str, data: Any) -> Fault | None:
        self.rows[data["name"]] = ((data["name"], seq), seq)
        return None
