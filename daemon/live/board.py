"""The loop's copy of live offers and streams, for the till, API and display.

The journal is the record; this copy is loaded from the read models at start
and changed only by ``after_commit`` callbacks of the transactions that changed
them, so it never shows a price the journal has not made durable. Validity is
decided at each read against the clock: an offer expires at its exact time.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

_LOG = logging.getLogger(__name__)
OFFER_COLUMNS = ("sku, kind, event_id, stream_id, price_minor, until_s, cap, sold,"
                 " t")
STREAM_COLUMNS = "id, platform, title, active, started_t, t"


@dataclass(frozen=True, slots=True)
class Offer:
    """A pin or flash drop on one sku; price None pins without a live price."""

    sku: str
    kind: str  # "pin" or "flash"
    event_id: str
    stream_id: str
    price_minor: int | None
    until_s: float
    cap: int | None = None
    sold: int = 0
    t: float = 0.0

    def valid(self, now_s: float) -> bool:
        """Return True while the offer applies."""
        return now_s < self.until_s

    def left(self) -> int | None:
        """Return units left under the cap (None: no cap)."""
        return None if self.cap is None else max(0, self.cap - self.sold)

    def price_for(self, qty: int, now_s: float) -> int | None:
        """Return the live unit price for qty units now, or None."""
        if self.price_minor is None or not self.valid(now_s):
            return None
        left = self.left()
        return self.price_minor if left is None or qty <= left else None


@dataclass(frozen=True, slots=True)
class Stream:
    """A live stream the stall sells into."""

    id: str
    platform: str
    title: str
    active: bool
    started_t: float
    t: float


def rfc3339(unix_s: float) -> str:
    """Return a unix time as an RFC 3339 UTC string."""
    moment = datetime.fromtimestamp(unix_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def offer_from_row(row: tuple[Any, ...]) -> Offer:
    """Build an Offer from a live_offers row in OFFER_COLUMNS order."""
    return Offer(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                 row[8])


def stream_from_row(row: tuple[Any, ...]) -> Stream:
    """Build a Stream from a live_streams row in STREAM_COLUMNS order."""
    return Stream(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


def load_rows(conn: sqlite3.Connection) -> tuple[list[Offer], list[Stream]]:
    """Read every offer and stream (at start)."""
    offers = conn.execute(f"SELECT {OFFER_COLUMNS} FROM live_offers").fetchall()
    streams = conn.execute(f"SELECT {STREAM_COLUMNS} FROM live_streams").fetchall()
    return [offer_from_row(r) for r in offers], [stream_from_row(r) for r in streams]


class LiveBoard:
    """Offers by sku and streams by id, as last committed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.offers: dict[str, Offer] = {}
        self.streams: dict[str, Stream] = {}
        self.listeners: list[Callable[[], None]] = []

    def load(self, offers: Iterable[Offer], streams: Iterable[Stream]) -> None:
        """Replace the copy with what the read models hold."""
        self.offers = {o.sku: o for o in offers}
        self.streams = {s.id: s for s in streams}

    def set_offer(self, offer: Offer) -> None:
        """Take a committed offer change and tell the listeners."""
        self.offers[offer.sku] = offer
        self._changed()

    def set_stream(self, stream: Stream) -> None:
        """Take a committed stream change and tell the listeners."""
        self.streams[stream.id] = stream
        self._changed()

    def sold(self, sku: str, qty: int) -> None:
        """Count units sold at a capped live price (after the sale committed)."""
        offer = self.offers.get(sku)
        if offer is not None:
            self.offers[sku] = replace(offer, sold=offer.sold + qty)
            if offer.cap is not None:
                self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:
                _LOG.exception("live board listener failed")

    def live_price(self, sku: str, qty: int = 1) -> int | None:
        """Return the live unit price of sku for qty units now, or None."""
        offer = self.offers.get(sku)
        return offer.price_for(qty, self.clock()) if offer else None

    def unit_minor(self, sku: str, normal_minor: int, qty: int = 1) -> int:
        """Return what one unit costs now: the live price, else the normal one."""
        live = self.live_price(sku, qty)
        return normal_minor if live is None else live

    def pins(self) -> list[Offer]:
        """Return the offers valid now, newest first."""
        now = self.clock()
        valid = [o for o in self.offers.values() if o.valid(now)]
        return sorted(valid, key=lambda o: (-o.t, o.sku))

    def next_change_s(self) -> float:
        """Return the unix time the next valid offer expires (inf if none)."""
        now = self.clock()
        ends = [o.until_s for o in self.offers.values() if o.valid(now)]
        return min(ends, default=float("inf"))

    def active_stream(self) -> Stream | None:
        """Return the most recently started active stream."""
        active = [s for s in self.streams.values() if s.active]
        return max(active, key=lambda s: (s.started_t, s.id), default=None)

    def annotate(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add live_price_minor (and until) to product dicts while it applies."""
        if not self.offers:
            return items
        now = self.clock()
        for item in items:
            offer = self.offers.get(item["sku"])
            price = offer.price_for(1, now) if offer else None
            if offer is not None and price is not None:
                item["live_price_minor"] = price
                item["live_until"] = rfc3339(offer.until_s)
                item["live_kind"] = offer.kind
                if offer.cap is not None:
                    item["live_left"] = offer.left()
        return items
