"""Check a receipt excerpt against a stall's journal: epoch key, signature, event.

The epoch key is trusted only through its certificate chain back to the device
key; an EpochBook remembers the epochs it already followed, so the public page
checks each certificate once per run.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.journal.canonical import parse_canonical
from daemon.keys.epoch import DEVICE_SIGNER, check_certificate
from daemon.trust.excerpt import (
    Excerpt,
    ExcerptCheck,
    check_signature,
    excerpt_for_sale,
    parse_excerpt,
)

SALE_KIND = "sale.completed"


class EpochBook:
    """Epoch public keys whose certificate chain to the device key was checked."""

    def __init__(self, device_public: bytes | None) -> None:
        self.device_public = device_public
        self._keys: dict[int, tuple[bytes, int]] = {}

    def key(self, conn: sqlite3.Connection, epoch: int) -> tuple[bytes, int] | None:
        """Return (public key, certificate seq) of a certified epoch, or None."""
        if epoch in self._keys:
            return self._keys[epoch]
        first = max((e for e in self._keys if e < epoch), default=0) + 1
        rows = conn.execute("SELECT epoch, public_key, seq, cert FROM epochs"
                            " WHERE epoch BETWEEN ? AND ? ORDER BY epoch",
                            (first, epoch)).fetchall()
        for number, public, seq, cert in rows:
            if not self._certified(number, parse_canonical(bytes(cert))):
                return None
            self._keys[number] = (bytes(public), seq)
        return self._keys.get(epoch)

    def _certified(self, epoch: int, cert: dict[str, Any]) -> bool:
        signer = str(cert.get("signer"))
        if signer == DEVICE_SIGNER:
            public = self.device_public
        else:
            previous = self._keys.get(epoch - 1)
            public = previous[0] if previous and signer == str(epoch - 1) else None
        return public is not None and check_certificate(cert, public)


def journal_stall_id(conn: sqlite3.Connection, epoch: int) -> str | None:
    """Return the stall id the journal's certificate of an epoch names.

    Without that epoch, the newest certificate's; None for an unsigned journal.
    The id is only a claim until check_receipt follows the certificate chain.
    """
    row = conn.execute("SELECT cert FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
    row = row or conn.execute(
        "SELECT cert FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
    if row is None:
        return None
    stall_id = parse_canonical(bytes(row[0])).get("stall_id")
    return stall_id if isinstance(stall_id, str) else None


def check_receipt(conn: sqlite3.Connection, text: str, book: EpochBook,
                  stall_id: str) -> ExcerptCheck:
    """Check receipt text: signature by a certified epoch key, and the journal."""
    excerpt = parse_excerpt(text)
    if excerpt.stall_id != stall_id:
        return ExcerptCheck(False, f"the receipt is from stall {excerpt.stall_id!r},"
                            f" not {stall_id!r}", excerpt)
    found = book.key(conn, excerpt.epoch)
    verdict = check_signature(excerpt, found[0] if found else None)
    if not verdict.genuine or found is None:
        return verdict
    if excerpt.seq <= found[1] or _next_cert_seq(conn, excerpt.epoch) < excerpt.seq:
        return ExcerptCheck(False, f"sale {excerpt.seq} is outside epoch "
                            f"{excerpt.epoch}", excerpt)
    return _against_journal(conn, excerpt)


def _next_cert_seq(conn: sqlite3.Connection, epoch: int) -> int:
    row = conn.execute("SELECT seq FROM epochs WHERE epoch = ?", (epoch + 1,))
    found = row.fetchone()
    return found[0] if found else 2**62


def _against_journal(conn: sqlite3.Connection, excerpt: Excerpt) -> ExcerptCheck:
    row = conn.execute("SELECT ts, kind, body, hash FROM events WHERE seq = ?",
                       (excerpt.seq,)).fetchone()
    if row is None or row[1] != SALE_KIND:
        return ExcerptCheck(False, f"signed, but sale {excerpt.seq} is not in the "
                            "journal", excerpt)
    record = parse_canonical(bytes(row[2]))
    expected = excerpt_for_sale(excerpt.stall_id, excerpt.seq, row[0],
                                record["data"], bytes(row[3]), excerpt.epoch)
    if expected.signed_text() != excerpt.signed_text():
        return ExcerptCheck(False, f"signed, but the journal's sale {excerpt.seq} "
                            "differs: run stallbox verify", excerpt)
    return ExcerptCheck(True, f"genuine: sale {excerpt.seq} of stall "
                        f"{excerpt.stall_id}, signed by epoch {excerpt.epoch}", excerpt)
