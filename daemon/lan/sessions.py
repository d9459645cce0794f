"""Tablet sessions: pairing, expiry, revocation and the manager's elevation.

``tokens`` maps a token's SHA-256 to its live session; the auth middleware
consults only this map, and every journal change to a tablet updates it in an
``after_commit`` callback, so a revoked token is refused on the very next
request. The journal holds token hashes only, never tokens.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from daemon import pairing
from daemon.config import Config
from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.readers import Reader
from daemon.journal.store import Journal, Tx
from daemon.lan import pin as pins
from daemon.lan.limits import AttemptLimiter

_LOG = logging.getLogger(__name__)
T = TypeVar("T")
REVOKED = 1
EXPIRED = 2
MAX_LISTED = 200
# The session serving the current request, set by the auth middleware; a shift
# close keeps this one tablet paired so the manager can read the Z report.
ACTING_SESSION: ContextVar[str | None] = ContextVar("acting_session", default=None)


@dataclass(slots=True)
class TabletSession:
    """One paired tablet's live session."""

    digest: str
    name: str
    seq: int
    expires_monotonic: float
    elevated_until: float = 0.0

    def elevated(self) -> bool:
        """Return whether a manager PIN was entered on this tablet lately."""
        return time.monotonic() < self.elevated_until


class Lan:
    """Who may use the till: live sessions, the manager PIN and guess limits."""

    journal: Journal

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.sessions
        self.tokens: dict[str, TabletSession] = {}
        self.pairing_limiter = AttemptLimiter("pairing codes")
        self.pin_limiter = AttemptLimiter("manager PINs")
        self.pin: pins.PinHash | None = None

    async def open(self, journal: Journal, reader: Reader) -> None:
        """Load the PIN hash and the tablets whose tokens are still valid."""
        self.journal = journal
        self.pin = await asyncio.to_thread(pins.load_pin, self.config.state_dir)
        rows = await reader.run(_active_tablets)
        self.tokens = {digest: session for digest, name, paired_at, seq in rows
                       if (session := self._session(digest, name, paired_at, seq))}

    def _session(self, digest: str, name: str, paired_at: str,
                 seq: int) -> TabletSession | None:
        age_s = (datetime.now(UTC) - _parse_ts(paired_at)).total_seconds()
        left_s = self.settings.token_ttl_h * 3600 - age_s
        if left_s <= 0:
            return None
        return TabletSession(digest, name, seq, time.monotonic() + left_s)

    def session_for(self, token: str) -> TabletSession | None:
        """Return the live session of a token, or None (unknown, revoked, expired)."""
        digest = pairing.token_hash(token)
        session = self.tokens.get(digest)
        if session is not None and time.monotonic() >= session.expires_monotonic:
            del self.tokens[digest]
            return None
        return session

    async def pair(self, code: str, name: str, client: str) -> str:
        """Exchange a code for a token; every try counts until it succeeds."""
        code = pairing.check_code_format(code)
        name = pairing.check_name(name)
        stamp = self.pairing_limiter.begin(client)
        token, digest, event_seq = await self.journal.transact(
            lambda tx: pairing.redeem_code(tx, code, name))
        self.pairing_limiter.succeeded(client, stamp)
        ttl_s = self.settings.token_ttl_h * 3600
        self.tokens[digest] = TabletSession(digest, name, event_seq,
                                            time.monotonic() + ttl_s)
        _LOG.info("tablet %r paired", name)
        return token

    async def elevate(self, session: TabletSession, pin: str) -> float:
        """Check the manager PIN for this tablet; return the seconds it lasts."""
        stamp = self.pin_limiter.begin(session.digest)
        stored = self.pin
        if stored is None:
            self.pin_limiter.succeeded(session.digest, stamp)
            raise ConflictError("no manager PIN is set; on the box run: "
                                "stallbox manager-pin")
        if not await asyncio.to_thread(pins.pin_matches, stored, pin.strip()):
            _LOG.warning("wrong manager PIN on tablet %r", session.name)
            raise InputError("wrong manager PIN", field="pin")
        self.pin_limiter.succeeded(session.digest, stamp)
        lasts_s = self.settings.manager_elevation_s
        session.elevated_until = time.monotonic() + lasts_s
        _LOG.info("manager PIN entered on tablet %r", session.name)
        return lasts_s

    async def set_pin(self, pin: str, by: str) -> None:
        """Store a new manager PIN hash, journal that it changed, end elevations."""
        stored = await asyncio.to_thread(pins.hash_pin, pin)
        await asyncio.to_thread(pins.store_pin, self.config.state_dir, stored)
        await self.journal.append("manager.pin_set", {"by": by})
        self.pin = stored
        for session in self.tokens.values():
            session.elevated_until = 0.0
        _LOG.info("manager PIN set by %s", by)

    async def revoke(self, tablet_seq: int, by: str) -> dict[str, Any]:
        """Revoke a tablet's token; it is refused from the next request on."""
        return await self.journal.transact(lambda tx: self._revoke(tx, tablet_seq, by))

    def _revoke(self, tx: Tx, tablet_seq: int, by: str) -> dict[str, Any]:
        row = tx.execute("SELECT token_hash, name, revoked FROM tablets"
                         " WHERE seq = ?", (tablet_seq,)).fetchone()
        if row is None:
            raise NotFoundError(f"no tablet paired at seq {tablet_seq}")
        digest, name, revoked = row
        if revoked != REVOKED:
            tx.append("tablet.revoked", {"tablet_seq": tablet_seq, "name": name,
                                         "by": by})
            tx.execute("UPDATE tablets SET revoked = ? WHERE seq = ?",
                       (REVOKED, tablet_seq))
        tx.after_commit(lambda: self._forget([digest]))
        return {"seq": tablet_seq, "name": name, "state": "revoked"}

    def _forget(self, digests: list[str]) -> None:
        for digest in digests:
            self.tokens.pop(digest, None)

    def with_shift_close(self, fn: Callable[[Tx], dict[str, Any]]
                         ) -> Callable[[Tx], dict[str, Any]]:
        """Wrap a shift-close transaction so that it also expires tablet tokens."""
        keep = ACTING_SESSION.get()
        if not self.settings.expire_at_shift_close:
            return fn
        return lambda tx: self._expire_at_close(tx, fn(tx), keep)

    def _expire_at_close(self, tx: Tx, report: dict[str, Any],
                         keep: str | None) -> dict[str, Any]:
        if not report.get("created"):
            return report
        digests = [row[0] for row in tx.execute(
            "SELECT token_hash FROM tablets WHERE revoked = 0 AND token_hash IS NOT ?",
            (keep,))]
        if digests:
            tx.execute("UPDATE tablets SET revoked = ? WHERE revoked = 0"
                       " AND token_hash IS NOT ?", (EXPIRED, keep))
            tx.append("tablets.expired", {"reason": "shift closed",
                                          "shift_seq": report["seq"],
                                          "count": len(digests)})
            tx.after_commit(lambda: self._forget(digests))
        return report

    async def tablets(self, reader: Reader) -> list[dict[str, Any]]:
        """List paired tablets newest first with their state, for the manager."""
        rows = await reader.run(_all_tablets)
        return [self._describe(*row) for row in rows]

    def _describe(self, digest: str, name: str, paired_at: str, seq: int,
                  revoked: int) -> dict[str, Any]:
        live = self.tokens.get(digest)
        state = {REVOKED: "revoked", EXPIRED: "expired"}.get(revoked, "expired")
        if live is not None and time.monotonic() < live.expires_monotonic:
            state = "active"
        left_s = int(live.expires_monotonic - time.monotonic()) if live else 0
        return {"seq": seq, "name": name, "paired_at": paired_at, "state": state,
                "expires_in_s": max(left_s, 0) if state == "active" else 0,
                "current": digest == ACTING_SESSION.get()}


def _parse_ts(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def _active_tablets(conn: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    return conn.execute("SELECT token_hash, name, paired_at, seq FROM tablets"
                        " WHERE revoked = 0").fetchall()


def _all_tablets(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT token_hash, name, paired_at, seq, revoked FROM"
                        " tablets ORDER BY seq DESC LIMIT ?", (MAX_LISTED,)).fetchall()
