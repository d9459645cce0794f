"""Webhook events: their bodies, and how each moves the live read models.

Every accepted event is journaled once, by its id (``live_events``). Events
may arrive late or out of order: each stream and offer keeps the signed time
``t`` of the event that last changed it, and an older event is journaled as
received but ``"applied": false`` and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.errors import InputError
from daemon.journal.store import Tx
from daemon.live.board import (
    OFFER_COLUMNS,
    STREAM_COLUMNS,
    LiveBoard,
    Offer,
    Stream,
    offer_from_row,
    stream_from_row,
)
from daemon.web.schema import Int, Obj, Str, parse_json_body

_LOG = logging.getLogger(__name__)
MAX_UNTIL_AHEAD_S = 7 * 24 * 3600
_ID = Str(1, 100)
_SKU = Str(1, 64)
_TYPE = Str(1, 40)
_PRICE = Int(0, 10**9)
_UNTIL = Str(1, 40)
SPECS: dict[str, Obj] = {
    "stream.started": Obj({"id": _ID, "type": _TYPE, "stream_id": _ID,
                           "platform": Str(0, 40), "title": Str(0, 200)},
                          frozenset({"platform", "title"})),
    "stream.ended": Obj({"id": _ID, "type": _TYPE, "stream_id": _ID}),
    "product.pinned": Obj({"id": _ID, "type": _TYPE, "sku": _SKU,
                           "price_minor": _PRICE, "until": _UNTIL,
                           "stream_id": _ID},
                          frozenset({"price_minor", "stream_id"})),
    "product.unpinned": Obj({"id": _ID, "type": _TYPE, "sku": _SKU,
                             "stream_id": _ID}, frozenset({"stream_id"})),
    "flash.started": Obj({"id": _ID, "type": _TYPE, "sku": _SKU,
                          "price_minor": _PRICE, "quantity": Int(1, 100_000),
                          "until": _UNTIL, "stream_id": _ID},
                         frozenset({"stream_id"})),
}


@dataclass(frozen=True, slots=True)
class Received:
    """A webhook event whose signature checked: who sent it, when, what."""

    integration: str
    t: int
    body: dict[str, Any]


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse and check an event body; a wrong one is InputError naming the field."""
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise InputError("body must be a JSON object", field="body")
    spec = SPECS.get(body.get("type"))  # type: ignore[arg-type]
    if spec is None:
        raise InputError("type must be one of " + ", ".join(SPECS), field="type")
    return spec.check(body)


def parse_until(text: str, now_s: float) -> float:
    """Return an RFC 3339 time as unix seconds, bounded to a week ahead."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise InputError("until must be an RFC 3339 time", field="until") from err
    if moment.tzinfo is None:
        raise InputError("until needs a time zone (e.g. Z)", field="until")
    until = moment.timestamp()
    if until > now_s + MAX_UNTIL_AHEAD_S:
        raise InputError("until is more than a week ahead", field="until")
    return until


Commit = Callable[[LiveBoard], None]  # applies a committed change to the board


def record(tx: Tx, event: Received, now_s: float) -> list[Commit] | None:
    """Journal a new event and move the read models; None if its id was seen."""
    body = event.body
    seen = tx.execute("SELECT 1 FROM live_events WHERE id = ?", (body["id"],))
    if seen.fetchone():
        return None
    kind = body["type"]
    plan = _PLANS[kind](tx, event, now_s)
    data = {**body, "integration": event.integration, "t": event.t,
            "applied": plan is not None}
    seq = tx.append("live." + kind, data).seq
    tx.execute("INSERT INTO live_events (id, integration, type, seq)"
               " VALUES (?, ?, ?, ?)", (body["id"], event.integration, kind, seq))
    return [plan(seq)] if plan is not None else []


Plan = Callable[[int], Commit]


def _stream_row(tx: Tx, stream_id: str) -> Stream | None:
    row = tx.execute(f"SELECT {STREAM_COLUMNS} FROM live_streams WHERE id = ?",
                     (stream_id,)).fetchone()
    return stream_from_row(row) if row else None


def _offer_row(tx: Tx, sku: str) -> Offer | None:
    row = tx.execute(f"SELECT {OFFER_COLUMNS} FROM live_offers WHERE sku = ?",
                     (sku,)).fetchone()
    return offer_from_row(row) if row else None


def _stream_plan(tx: Tx, event: Received, now_s: float) -> Plan | None:
    """Start or end a stream unless a newer event already moved it."""
    body = event.body
    old = _stream_row(tx, body["stream_id"])
    if old is not None and old.t > event.t:
        return None
    started = body["type"] == "stream.started"
    stream = Stream(
        body["stream_id"],
        body.get("platform", old.platform if old else ""),
        body.get("title", old.title if old else ""),
        started, float(event.t) if started or old is None else old.started_t,
        float(event.t))

    def write(seq: int) -> Commit:
        tx.execute(
            "INSERT OR REPLACE INTO live_streams (id, platform, title, active,"
            " started_t, t, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream.id, stream.platform, stream.title, int(stream.active),
             stream.started_t, stream.t, seq))
        return lambda board: board.set_stream(stream)

    return write


def _offer_plan(tx: Tx, event: Received, now_s: float) -> Plan | None:
    """Pin, flash or unpin a product unless a newer event already moved it."""
    body = event.body
    sku = body["sku"]
    product = tx.execute("SELECT gift_card FROM products WHERE sku = ?"
                         " AND active = 1", (sku,)).fetchone()
    if product is None:
        raise InputError(f"unknown or inactive product: {sku[:64]!r}", field="sku")
    if product[0] and body["type"] != "product.unpinned":
        raise InputError(f"{sku[:64]!r} is a gift card: it is sold at its face "
                         "value, never at a live price", field="sku")
    old = _offer_row(tx, sku)
    if old is not None and old.t > event.t:
        return None
    offer = _new_offer(tx, event, old, now_s)

    def write(seq: int) -> Commit:
        tx.execute(
            "INSERT OR REPLACE INTO live_offers (sku, kind, event_id, stream_id,"
            " price_minor, until_s, cap, sold, t, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (offer.sku, offer.kind, offer.event_id, offer.stream_id,
             offer.price_minor, offer.until_s, offer.cap, offer.sold, offer.t, seq))
        return lambda board: board.set_offer(offer)

    return write


def _new_offer(tx: Tx, event: Received, old: Offer | None, now_s: float) -> Offer:
    """Return the offer an event leaves on its sku."""
    body = event.body
    if body["type"] == "product.unpinned":
        until = min(old.until_s, now_s) if old else now_s
        kind, price = (old.kind, old.price_minor) if old else ("pin", None)
        return Offer(body["sku"], kind, body["id"], old.stream_id if old else "",
                     price, until, old.cap if old else None,
                     old.sold if old else 0, float(event.t))
    stream_id = body.get("stream_id") or _active_stream_id(tx)
    flash = body["type"] == "flash.started"
    return Offer(body["sku"], "flash" if flash else "pin", body["id"], stream_id,
                 body.get("price_minor"), parse_until(body["until"], now_s),
                 body["quantity"] if flash else None, 0, float(event.t))


def _active_stream_id(tx: Tx) -> str:
    # journal order, as daemon.live.pricing._active_stream: seconds tie
    row = tx.execute("SELECT id FROM live_streams WHERE active = 1"
                     " ORDER BY seq DESC LIMIT 1").fetchone()
    return str(row[0]) if row else ""


_PLANS: dict[str, Callable[[Tx, Received, float], Plan | None]] = {
    "stream.started": _stream_plan,
    "stream.ended": _stream_plan,
    "product.pinned": _offer_plan,
    "product.unpinned": _offer_plan,
    "flash.started": _offer_plan,
}
