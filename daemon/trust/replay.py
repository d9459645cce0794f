"""Read models against a replay of the events, fed by the verifier's single pass.

Each observer merge-joins one read model, read in seq order from the same
snapshot, with the events that made it, so the check streams a 1 M-event
journal in constant memory. Covered: sales (columns and the receipt's signed
excerpt), epochs and closures. Other read models (catalog, print jobs,
tablets) belong to their issues and are not replayed yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from daemon.journal.canonical import canonical_bytes, parse_canonical
from daemon.journal.verify import ObserverFactory
from daemon.keys.epoch import CERT_KIND
from daemon.trust.closures import CLOSURE_KINDS
from daemon.trust.excerpt import SEP, excerpt_for_sale

SALE_KIND = "sale.completed"
FETCH_ROWS = 4096


def _stream(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    cursor = conn.execute(sql)
    while rows := cursor.fetchmany(FETCH_ROWS):
        yield from rows


class _MergeJoin:
    """Pairs events of some kinds with read-model rows keyed by the same seq."""

    kinds: frozenset[str] = frozenset()
    table = ""
    sql = ""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._rows = _stream(conn, self.sql)
        self._row = next(self._rows, None)

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any] | None,
             digest: bytes) -> str:
        if kind not in self.kinds:
            if self._row is not None and self._row[0] == seq:
                return f"{self.table} has a row at seq {seq}, an event of kind {kind}"
            return ""
        row = self._row
        if row is None or row[0] != seq:
            return f"{self.table} lacks the row of this {kind} event"
        self._row = next(self._rows, None)
        assert record is not None  # the walk parses the kinds observers list
        return self.compare(row, seq, ts, record, digest)

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        raise NotImplementedError

    def finish(self) -> tuple[int, str] | None:
        if self._row is not None:
            return (self._row[0], f"{self.table} has a row with no event")
        return None


class SalesReplay(_MergeJoin):
    """Each completed sale row equals its sale.completed event."""

    kinds = frozenset({SALE_KIND})
    table = "sales"
    sql = ("SELECT seq, id, client_ref, created_at, tablet, total_minor, currency,"
           " receipt FROM sales WHERE status = 'completed' ORDER BY seq")

    def compare(self, row: tuple[Any, ...], seq: int, ts: str,
                record: dict[str, Any], digest: bytes) -> str:
        data = record["data"]
        wanted = (data["id"], data["client_ref"], ts, data["tablet"],
                  data["total_minor"], data["currency"])
        if tuple(row[1:7]) != wanted:
            return "sales row differs from its sale.completed event"
        receipt = parse_canonical(bytes(row[7]))
        if receipt.get("seq") != seq or receipt.get("total_minor") != wanted[4]:
            return "the stored receipt differs from its sale.completed event"
        return _excerpt_fault(receipt.get("excerpt", ""), seq, ts, data, digest)


def _excerpt_fault(text: str, seq: int, ts: str, data: dict[str, Any],
                   digest: bytes) -> str:
    if not text:
        return ""
    parts = text.split(SEP)
    if len(parts) != 10 or not parts[8].isdigit():
        return "the stored receipt's QR excerpt is malformed"
    wanted = excerpt_for_sale(parts[1], seq, ts, data, bytes(digest), int(parts[8]))
    if SEP.join(parts[:9]) + SEP != wanted.signed_text():
        return "the stored receipt's QR excerpt differs from its event"
    return ""


class EpochsReplay(_MergeJoin):
    """Each epochs row equals its key.epoch certificate."""

    kinds = frozenset({CERT_KIND})
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

    kinds = frozenset(CLOSURE_KINDS)
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


def replay_observers() -> list[ObserverFactory]:
    """Return the observers that check every replayed read model."""
    return [SalesReplay, EpochsReplay, ClosuresReplay]
