"""Pair tablets: one-time 6-digit codes exchanged for long random tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from daemon.errors import InputError
from daemon.journal.store import Tx

TOKEN_BYTES = 32  # 256 random bits; the issue asks for at least 128
MAX_NAME = 40


def token_hash(token: str) -> str:
    """Return the stored form of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _code_hash(code: str) -> str:
    return hashlib.sha256(b"pairing-code:" + code.encode("ascii")).hexdigest()


def issue_code(tx: Tx, ttl_s: int) -> str:
    """Create a one-time pairing code, journaled only as its hash and expiry."""
    code = f"{secrets.randbelow(10**6):06d}"
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    expires_at = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
    event = tx.append("pairing.code_issued", {"expires_at": expires_at})
    tx.execute("INSERT OR REPLACE INTO pairing_codes (code_hash, expires_at, used,"
               " seq) VALUES (?, ?, 0, ?)", (_code_hash(code), expires_at, event.seq))
    return code


def redeem_code(tx: Tx, code: str, name: str) -> tuple[str, str, int]:
    """Exchange a valid unused code for a new token; return (token, hash, seq)."""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    row = tx.execute(
        "SELECT code_hash FROM pairing_codes WHERE code_hash = ? AND used = 0"
        " AND expires_at > ?", (_code_hash(code), now)).fetchone()
    if row is None:
        raise InputError("wrong or expired pairing code", field="code")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = token_hash(token)
    event = tx.append("tablet.paired", {"name": name, "token_hash": digest})
    tx.execute("UPDATE pairing_codes SET used = 1 WHERE code_hash = ?", (row[0],))
    tx.execute("INSERT INTO tablets (token_hash, name, paired_at, revoked, seq)"
               " VALUES (?, ?, ?, 0, ?)", (digest, name, event.ts, event.seq))
    return token, digest, event.seq


def check_name(name: str) -> str:
    """Return a tablet name cleaned for display, or raise naming the field."""
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME or not cleaned.isprintable():
        raise InputError(f"name must be 1 to {MAX_NAME} printable characters",
                         field="name")
    return cleaned


def check_code_format(code: str) -> str:
    """Return the code if it is six digits, else raise naming the field."""
    code = code.strip()
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InputError("the pairing code is six digits", field="code")
    return code
