"""Check a receipt's QR excerpt against the journals the receiver holds.

The excerpt parsing, signature check and the excerpt rebuilt from the sale
event are daemon.trust's own; what differs is where the epoch key comes from:
the receiver's ``epochs`` table, whose certificate chain is walked back to the
device key enrolled for the stall. The excerpt names the stall id its
certificates carry ([stall] id), which need not be the sync stall id, so every
stall whose journal carries that id is tried.
"""

from __future__ import annotations

import json
import sqlite3

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


def check_receipt(conn: sqlite3.Connection, text: str) -> ExcerptCheck:
    """Check receipt text; raise ExcerptError when it is not an excerpt at all."""
    excerpt = parse_excerpt(text)
    stalls = conn.execute("SELECT stall_id, public_key FROM stalls WHERE"
                          " journal_id = ? AND revoked = 0 ORDER BY stall_id",
                          (excerpt.stall_id,)).fetchall()
    if not stalls:
        return ExcerptCheck(False, f"no stall {excerpt.stall_id!r} has synced a "
                            "signed journal here", excerpt)
    verdicts = [_check_stall(conn, sid, bytes(key), excerpt) for sid, key in stalls]
    return next((v for v in verdicts if v.genuine), verdicts[0])


def _check_stall(conn: sqlite3.Connection, stall_id: str, device_public: bytes,
                 excerpt: Excerpt) -> ExcerptCheck:
    found = certified_key(conn, stall_id, device_public, excerpt.epoch)
    verdict = check_signature(excerpt, found[0] if found else None)
    if not verdict.genuine or found is None:
        return verdict
    following = conn.execute("SELECT seq FROM epochs WHERE stall_id = ? AND"
                             " epoch = ?", (stall_id, excerpt.epoch + 1)).fetchone()
    if excerpt.seq <= found[1] or (following and following[0] < excerpt.seq):
        return ExcerptCheck(False, f"sale {excerpt.seq} is outside epoch "
                            f"{excerpt.epoch}", excerpt)
    return _against_events(conn, stall_id, excerpt)


def certified_key(conn: sqlite3.Connection, stall_id: str, device_public: bytes,
                  epoch: int) -> tuple[bytes, int] | None:
    """Return (public key, certificate seq) if epoch's chain reaches the device key."""
    rows = conn.execute("SELECT epoch, public_key, seq, cert FROM epochs WHERE"
                        " stall_id = ? AND epoch <= ? ORDER BY epoch",
                        (stall_id, epoch)).fetchall()
    keys: dict[int, bytes] = {}
    for number, public, _seq, cert_text in rows:
        cert = json.loads(cert_text)
        signer = str(cert.get("signer"))
        by = device_public if signer == DEVICE_SIGNER else keys.get(number - 1)
        if by is None or signer not in (DEVICE_SIGNER, str(number - 1)) \
                or not check_certificate(cert, by):
            return None
        keys[number] = bytes(public)
    last = rows[-1] if rows else None
    return (bytes(last[1]), last[2]) if last and last[0] == epoch else None


def _against_events(conn: sqlite3.Connection, stall_id: str,
                    excerpt: Excerpt) -> ExcerptCheck:
    row = conn.execute("SELECT ts, kind, body, hash FROM events WHERE stall_id = ?"
                       " AND seq = ?", (stall_id, excerpt.seq)).fetchone()
    if row is None:
        return ExcerptCheck(False, f"signed by the stall, but sale {excerpt.seq} "
                            "has not reached the billing pipeline yet; check again "
                            "after the stall synced", excerpt)
    if row[1] != SALE_KIND:
        return ExcerptCheck(False, f"seq {excerpt.seq} is not a sale", excerpt)
    record = parse_canonical(bytes(row[2]))
    expected = excerpt_for_sale(excerpt.stall_id, excerpt.seq, row[0],
                                record["data"], bytes(row[3]), excerpt.epoch)
    if expected.signed_text() != excerpt.signed_text():
        return ExcerptCheck(False, f"signed, but sale {excerpt.seq} as received "
                            "differs from the receipt", excerpt)
    return ExcerptCheck(True, f"genuine: sale {excerpt.seq} of stall "
                        f"{excerpt.stall_id}, signed by epoch {excerpt.epoch}, "
                        "received by the billing pipeline", excerpt)
