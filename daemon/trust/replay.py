"""Read models against a replay of the events, fed by the verifier.

Each observer merge-joins one read model, read in seq order from the same
snapshot, with the events that made it, so the check streams a 1 M-event
journal in constant memory. A row with no event, an event with no row and a
row that differs from what its event says are each named by seq.

Sales are most of a journal, so their check is the one made fast:

- a sale body is decoded without its carbon part, which repeats from sale to
  sale; that part is decoded once per distinct text and kept in a small memo
  (``_SaleParser``), and its receipt lines are recomputed once per memo entry;
- the sale's lines and payments come with its row, folded by SQLite into one
  string each (``quote()`` of every column), compared with the same string
  built from the event;
- the stored receipt (since ``daemon.sales.receipt_store``, only what the
  event lacks) must equal, byte for byte, what the sale service stores for
  the event, and its signed QR excerpt must be the event's; a row written
  before, which holds the whole receipt, is checked in that form.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import chain, repeat
from typing import Any

from daemon.journal.canonical import (
    DATA_HEAD,
    canonical_bytes,
    compact_bytes,
    parse_canonical,
)
from daemon.journal.verify import (
    ALL_SEQS,
    DataParser,
    Fault,
    ObserverFactory,
    parse_body,
)
from daemon.keys.epoch import CERT_KIND
from daemon.sales.receipt_store import (
    EVENT_KEYS,
    SLIM_HEAD,
    field_bytes,
    head,
    merge,
)
from daemon.trust.closures import CLOSURE_KINDS
from daemon.trust.excerpt import SEP, sale_signed_text

SALE_KIND = "sale.completed"
FETCH_ROWS = 4096
MEMO_ENTRIES = 512
_CARBON_HEAD = (DATA_HEAD + '{"carbon":').encode()
_AFTER_CARBON = b',"cash_rounding":'
_EXCERPT_KEY = b',"excerpt":"'
_CARBON_KEY = b',"carbon_lines":'
_HEAD_KEYS = frozenset({"seq", *EVENT_KEYS, "sale_discount"})
_TERMINAL_KEY = b',"terminal_lines":'
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")  # Ed25519, URL-safe base64 unpadded


def _stream(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    """Return the rows of sql, FETCH_ROWS a fetch, with no Python frame per row."""
    cursor = conn.execute(sql)
    return chain.from_iterable(iter(partial(cursor.fetchmany, FETCH_ROWS), []))


class _MergeJoin:
    """Pairs events of some kinds with read-model rows keyed by the same seq."""

    kinds: frozenset[str] = frozenset()
    row_kinds: frozenset[str] = frozenset()
    parsers: dict[str, DataParser] = {}
    table = ""
    sql = ""

    def __init__(self, conn: sqlite3.Connection,
                 seq_range: tuple[int, int] = ALL_SEQS) -> None:
        self.conn = conn
        self.seq_range = seq_range
        self._rows = _stream(conn, self.sql.format(first=seq_range[0],
                                                   last=seq_range[1]))
        self._row = next(self._rows, None)

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any],
             digest: bytes) -> Fault | None:
        if kind in self.row_kinds and not (
                self.seq_range[0] <= seq <= self.seq_range[1]):
            return None
        row = self._row
        if row is not None and row[0] < seq:
            return row[0], f"{self.table} has a row at seq {row[0]} that no event made"
        if kind not in self.row_kinds:
            return self.other(seq, kind, record)
        if row is None or row[0] != seq:
            return seq, f"{self.table} lacks the row of this {kind} event"
        self._row = next(self._rows, None)
        fault = self.compare(row, seq, ts, record, digest)
        return (seq, fault) if fault else None

    def other(self, seq: int, kind: str, record: dict[str, Any]) -> Fault | None:
        return None

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        raise NotImplementedError

    def finish(self) -> Fault | None:
        if self._row is not None:
            return (self._row[0], f"{self.table} has a row at seq {self._row[0]} "
                    "that no event made")
        return None


class _SaleParser:
    """Decodes a sale body's data (see ``parse_body``), its carbon part through a memo.

    Works on the body's bytes: canonical JSON is UTF-8, and the decoder reads
    bytes without a copy to text and back. It refuses what parse_body refuses:
    white space around a part (the canonical form has none) as well as
    anything the decoder refuses; a body it cannot split goes to parse_body.
    """

    def __init__(self) -> None:
        self.memo: dict[bytes, dict[str, Any]] = {}

    def __call__(self, body: bytes, end: int) -> Any:
        cut = body.find(_AFTER_CARBON, len(_CARBON_HEAD), end)
        if cut < 0 or not body.startswith(_CARBON_HEAD):
            return parse_body(body, end)
        try:
            carbon = self._carbon(body[len(_CARBON_HEAD):cut])
            # body[cut] is the comma before "cash_rounding": the rest of the object
            data = _value(b"{" + body[cut + 1:end])
        except ValueError:
            return parse_body(body, end)  # its own words for what is wrong
        data["carbon"] = carbon
        return data

    def _carbon(self, part: bytes) -> dict[str, Any]:
        carbon = self.memo.get(part)
        if carbon is None:
            carbon = _value(part)
            if not isinstance(carbon, dict):
                raise ValueError("the carbon part is not an object")
            if len(self.memo) >= MEMO_ENTRIES:
                self.memo.clear()
            self.memo[part] = carbon
        return carbon


def _value(raw: bytes) -> Any:
    """Decode the JSON value that fills raw, with no white space around it."""
    if not raw or raw[:1].isspace() or raw[-1:].isspace():
        raise ValueError("white space around a value")
    return parse_canonical(raw)


def _q(text: str) -> str:
    """Return what SQLite's quote() gives for a text value."""
    return "'" + text.replace("'", "''") + "'"


def _line_rows(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    sale_id = data["id"]
    return [(sale_id, n, ln["sku"], ln["name"], ln["qty"], ln["unit_minor"],
             ln["amount_minor"], ln["tax_code"])
            for n, ln in enumerate(data["lines"], 1)]


def _payment_rows(data: dict[str, Any], seq: int) -> list[tuple[Any, ...]]:
    sale_id, change = data["id"], data["change_minor"]
    return [(sale_id, p["method"], p["amount_minor"], p["tendered_minor"],
             change if p["method"] == "cash" else 0, p["status"], seq)
            for p in data["payments"]]


_LINE_COLUMNS = ("l.sale_id, l.line_no, l.sku, l.name, l.qty, l.unit_minor,"
                 " l.amount_minor, l.tax_code")
_PAYMENT_COLUMNS = ("p.sale_id, p.method, p.amount_minor, p.tendered_minor,"
                    " p.change_minor, p.status, p.seq")


class _MultisetDigest:
    """An order-free digest of rows: the sum of each row's hash, modulo 2**64.

    Python's hash of a row mixes its strings' SipHash, keyed at random per
    process (unless PYTHONHASHSEED pins it), and a salt drawn per walk leads
    every row; so nobody who edits the journal beforehand can choose rows
    whose hashes sum to the same value. Not a cryptographic check: it finds
    edits; the events' signatures are what an attacker cannot forge.
    """

    def __init__(self) -> None:
        self._salt = secrets.token_hex(16)
        self.total = 0

    def add(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self.total += self.of_rows(rows)

    def of_rows(self, rows: Iterable[tuple[Any, ...]]) -> int:
        return sum(map(hash, zip(repeat(self._salt), rows)))

    def __eq__(self, other: object) -> bool:  # compare totals modulo 2**64
        return isinstance(other, int) and (self.total - other) % (1 << 64) == 0


class SalesReplay(_MergeJoin):
    """Each completed sale: its row, lines, payments and receipt equal its event."""

    kinds = frozenset({SALE_KIND, CERT_KIND})
    row_kinds = frozenset({SALE_KIND})
    splittable = True
    table = "sales"
    sql = ("SELECT seq, id, client_ref, created_at, tablet, total_minor, currency,"
           " receipt FROM sales WHERE status = 'completed' AND seq BETWEEN {first}"
           " AND {last} ORDER BY seq")

    def __init__(self, conn: sqlite3.Connection,
                 seq_range: tuple[int, int] = ALL_SEQS) -> None:
        super().__init__(conn, seq_range)
        self.parsers = {SALE_KIND: _SaleParser()}
        self._lines, self._payments = _MultisetDigest(), _MultisetDigest()
        self._estimates: dict[int, tuple[dict[str, Any], bytes]] = {}
        self._epoch, self._stall_id = 0, ""

    def other(self, seq: int, kind: str, record: dict[str, Any]) -> Fault | None:
        cert = record["data"]  # a key.epoch: the walk checks it, here it is only read
        if isinstance(cert, dict):
            self._epoch, self._stall_id = cert.get("epoch", 0), cert.get("stall_id", "")
        return None

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        data = record["data"]
        wanted = (data["id"], data["client_ref"], ts, data["tablet"],
                  data["total_minor"], data["currency"])
        if row[1:7] != wanted:
            return "sales row differs from its sale.completed event"
        self._lines.add(_line_rows(data))
        self._payments.add(_payment_rows(data, seq))
        stored = row[7].encode("utf-8") if isinstance(row[7], str) else bytes(row[7])
        return self._receipt_fault(stored, seq, ts, data, digest)

    def _receipt_fault(self, stored: bytes, seq: int, ts: str, data: dict[str, Any],
                       digest: bytes) -> str:
        if stored.startswith(SLIM_HEAD):  # only what the event lacks (#6)
            return self._slim_fault(stored, seq, ts, data, digest)
        if _card_sale(data):  # receipts of card sales are merged, not rebuilt
            return self._card_receipt_fault(stored, seq, ts, data, digest)
        at = stored.rfind(_EXCERPT_KEY)
        if at < 0 or not stored.endswith(b'"}'):
            return "the stored receipt has no QR excerpt"
        excerpt = stored[at + len(_EXCERPT_KEY):-2].decode("utf-8", "replace")
        fault = self._excerpt_fault(excerpt, seq, ts, data, digest)
        if fault:
            return fault
        wanted, carbon_text = self._receipt_record(data, seq)
        cut = stored.find(_CARBON_KEY) if carbon_text else at
        if cut < 0 or stored[cut:at] != carbon_text:
            return "the stored receipt's carbon part differs from its event"
        try:  # nested objects keep the service's key order: compare as values
            head = parse_canonical(stored[:cut] + b"}")
        except ValueError:
            return "the stored receipt is not JSON"
        if head != wanted:
            return "the stored receipt differs from its sale.completed event"
        return ""

    def _slim_fault(self, stored: bytes, seq: int, ts: str, data: dict[str, Any],
                    digest: bytes) -> str:
        """Check a row that stores only what its event lacks, as bytes.

        It must read '{"v":2', a card sale's terminal slip (the one part not
        checked against an event, decoded), then the excerpt, and end there.
        """
        start = len(SLIM_HEAD)
        at = stored.rfind(_EXCERPT_KEY)
        if at < start or not stored.endswith(b'"}'):
            return "the stored receipt has no QR excerpt"
        if at > start and not (_card_sale(data) and _terminal_part(stored[start:at])):
            return "the stored receipt differs from its sale.completed event"
        excerpt = stored[at + len(_EXCERPT_KEY):-2].decode("utf-8", "replace")
        return self._excerpt_fault(excerpt, seq, ts, data, digest)

    def _card_receipt_fault(self, stored: bytes, seq: int, ts: str,
                            data: dict[str, Any], digest: bytes) -> str:
        """Check a card sale's receipt: stored in sorted-key canonical form, the
        excerpt is one key among the others rather than the last one."""
        try:
            receipt = parse_canonical(stored)
        except ValueError:
            return "the stored receipt is not JSON"
        excerpt = receipt.get("excerpt") if isinstance(receipt, dict) else None
        if not isinstance(excerpt, str):
            return "the stored receipt has no QR excerpt"
        fault = self._excerpt_fault(excerpt, seq, ts, data, digest)
        if fault:
            return fault
        wanted = {"seq": seq, **{key: data[key] for key in EVENT_KEYS}}
        if any(receipt.get(key) != value for key, value in wanted.items()):
            return "the stored receipt differs from its sale.completed event"
        return ""

    def _receipt_record(self, data: dict[str, Any], seq: int
                        ) -> tuple[dict[str, Any], bytes]:
        """Return the receipt without its carbon part, and that part's text.

        Nested objects keep the order the sale service gave them, which the
        event (sorted keys) no longer has: they are compared as values, and
        only the carbon part, built afresh, byte for byte.
        """
        carbon = data.get("carbon")
        if carbon is None:
            return head(data, seq), b""
        memo = self._estimates.get(id(carbon))
        if memo is None or memo[0] is not carbon:
            if len(self._estimates) >= MEMO_ENTRIES:
                self._estimates.clear()
            memo = (carbon, _carbon_text(data))
            self._estimates[id(carbon)] = memo
        return head(data, seq), memo[1]

    def _excerpt_fault(self, text: str, seq: int, ts: str, data: dict[str, Any],
                       digest: bytes) -> str:
        if not self._epoch:
            return "" if not text else "a receipt carries a QR excerpt in an " \
                "unsigned journal"
        wanted = sale_signed_text(self._stall_id, seq, ts, data, digest, self._epoch)
        if text.startswith(wanted):
            if _SIGNATURE.fullmatch(text, len(wanted)):
                return ""
            return "the stored receipt's QR excerpt is malformed"
        if len(text.split(SEP)) != 10:
            return "the stored receipt's QR excerpt is malformed"
        return "the stored receipt's QR excerpt differs from its event"

    def finish(self) -> Fault | None:
        """Compare the lines and payments of completed sales as two digests.

        Only when a digest differs is the journal walked again, sale by sale,
        to name the first sale whose rows differ.
        """
        fault = super().finish()
        if fault:
            return fault
        for table, alias, columns, digest in (
                ("sale_lines", "l", _LINE_COLUMNS, self._lines),
                ("payments", "p", _PAYMENT_COLUMNS, self._payments)):
            first, last = self.seq_range
            rows = _stream(self.conn, f"SELECT {columns} FROM {table} {alias}"
                           f" JOIN sales s ON s.id = {alias}.sale_id"
                           " WHERE s.status = 'completed' AND s.seq BETWEEN"
                           f" {first} AND {last}")
            if digest != digest.of_rows(rows):
                return self._locate(table)
        return self._orphans()

    def _locate(self, table: str) -> Fault:
        """Walk the sales again and name the first whose rows in table differ."""
        parse = self.parsers[SALE_KIND]
        rows = self.conn.execute(
            "SELECT e.seq, e.ts, e.body, s.id FROM events e JOIN sales s"
            " ON s.seq = e.seq WHERE e.kind = ? AND s.status = 'completed'"
            " AND e.seq BETWEEN ? AND ? ORDER BY e.seq", (SALE_KIND, *self.seq_range))
        for seq, ts, body, sale_id in rows:
            tail = len(f',"kind":"{SALE_KIND}","seq":{seq},"ts":"{ts}"}}'.encode())
            data = parse(bytes(body), len(body) - tail)
            if _rows_of(self.conn, table, sale_id) != _wanted_rows(table, data, seq):
                return seq, f"{table} rows differ from their sale.completed event"
        return self._orphans() or (0, f"{table} has rows no completed sale made")

    def _orphans(self) -> Fault | None:
        if self.seq_range[1] != ALL_SEQS[1]:
            return None  # the part that checks the newest sales looks for these
        row = self.conn.execute("SELECT seq FROM sales WHERE seq < ? OR seq > ?"
                                " ORDER BY seq LIMIT 1", ALL_SEQS).fetchone()
        if row is not None:  # below or past every range the replay streams
            return row[0], f"sales has a row at seq {row[0]} that no event made"
        for table in ("sale_lines", "payments"):
            row = self.conn.execute(
                f"SELECT sale_id FROM {table} WHERE sale_id NOT IN"
                " (SELECT id FROM sales) LIMIT 1").fetchone()
            if row is not None:
                head = self.conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
                return head or 0, f"{table} has a row of sale {row[0]!r}, which " \
                    "does not exist"
        return None


def _rows_of(conn: sqlite3.Connection, table: str, sale_id: str) -> list[Any]:
    if table == "sale_lines":
        sql = (f"SELECT {_LINE_COLUMNS} FROM sale_lines l WHERE sale_id = ?"
               " ORDER BY line_no")
    else:
        sql = (f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE sale_id = ?"
               " ORDER BY id")
    return conn.execute(sql, (sale_id,)).fetchall()


def _wanted_rows(table: str, data: dict[str, Any], seq: int) -> list[Any]:
    if table == "sale_lines":
        return _line_rows(data)
    return _payment_rows(data, seq)


def _carbon_text(data: dict[str, Any]) -> bytes:
    """Return the receipt's carbon keys as the whole form stored them:
    ',"carbon_lines":...' (formatted from the event's figures, as read)."""
    record = merge(data, 0, {})
    part = {key: record[key] for key in record if key not in _HEAD_KEYS}
    return b"," + compact_bytes(part)[1:-1] if part else b""


def _terminal_part(part: bytes) -> bool:
    """Say whether part is a card terminal's slip as the sale service stores it."""
    if not part.startswith(_TERMINAL_KEY):
        return False
    try:
        lines = json.loads(part[len(_TERMINAL_KEY):])
    except ValueError:
        return False
    return (isinstance(lines, list) and all(isinstance(x, str) for x in lines)
            and field_bytes("terminal_lines", lines) == part)


def _card_sale(data: dict[str, Any]) -> bool:
    return "replaced_card" in data or any("intent_id" in p for p in data["payments"])


class EpochsReplay(_MergeJoin):
    """Each epochs row equals its key.epoch certificate."""

    kinds = row_kinds = frozenset({CERT_KIND})
    table = "epochs"
    sql = "SELECT seq, epoch, public_key, cert FROM epochs ORDER BY seq"

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        cert = record["data"]
        if bytes(row[3]) != canonical_bytes(cert) or row[1] != cert.get("epoch"):
            return "epochs row differs from its key.epoch certificate"
        return ""


class ClosuresReplay(_MergeJoin):
    """Each closures row equals its shift.closed or day.closed event."""

    kinds = row_kinds = frozenset(CLOSURE_KINDS)
    table = "closures"
    sql = "SELECT seq, kind, client_ref, from_seq, body FROM closures ORDER BY seq"

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        data = record["data"]
        wanted = (record["kind"], data["client_ref"], data["from_seq"],
                  canonical_bytes(data))
        if (row[1], row[2], row[3], bytes(row[4])) != wanted:
            return "closures row differs from its closure event"
        return ""


def _gift_cards() -> ObserverFactory:
    from daemon.sales.giftcards import GiftCardsReplay  # balances (#4)

    class GiftCardEvents(GiftCardsReplay):
        """GiftCardsReplay fed only the events that carry a gift-card part.

        Its feed returns at once for an event whose data has no "gift_cards"
        key, as most sales have none; so the walk need not decode a sale for
        it (the split walk's chain process decodes no sale past its share).
        """

        needs = dict.fromkeys(GiftCardsReplay.kinds, b'"gift_cards"')

    return GiftCardEvents


def replay_observers() -> list[ObserverFactory]:
    """Return the observers that check every replayed read model."""
    from daemon.trust import replay_tables as t

    return [_gift_cards(), SalesReplay, EpochsReplay, ClosuresReplay,
            t.PrintJobsReplay,
            t.ProductsReplay, t.TabletsReplay, t.PairingCodesReplay, t.ShiftsReplay,
            t.RefundsReplay, t.EmailReceiptsReplay, t.DisplayReplay,
            t.SyncCursorReplay, t.LiveIntegrationsReplay]
