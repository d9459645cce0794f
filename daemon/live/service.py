"""Live selling on one running daemon: secrets, board, webhook intake, reports."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daemon.errors import NotFoundError
from daemon.journal.store import Tx
from daemon.live import events, keyring, signature
from daemon.live.board import LiveBoard, load_rows
from daemon.live.pricing import LivePricing, live_product

if TYPE_CHECKING:
    from daemon.runtime import Stallbox

_LOG = logging.getLogger(__name__)
_LIVE: weakref.WeakKeyDictionary[object, LiveSelling] = weakref.WeakKeyDictionary()


class LiveSelling:
    """What live selling keeps while the daemon runs."""

    def __init__(self, box: Stallbox, clock: Callable[[], float] = time.time
                 ) -> None:
        self.box = box
        self.clock = clock
        self.board = LiveBoard(clock)
        self.pricing = LivePricing(self.board, clock)
        self.secrets: dict[str, str] = {}

    async def open(self) -> None:
        """Load the secrets and the board from the state dir and read models."""
        self.secrets = await asyncio.to_thread(keyring.load, self.box.config.state_dir)
        offers, streams = await self.box.reader.run(load_rows)
        self.board.load(offers, streams)
        _LOG.info("live selling: %d integration(s), %d offer(s)",
                  len(self.secrets), len(offers))

    async def receive(self, header: str, raw: bytes) -> bool:
        """Check, journal and apply one webhook event; False if seen before."""
        name, t = signature.verify(header, raw, self.secrets.items(), self.clock())
        body = events.parse_body(raw)
        received = events.Received(name, t, body)
        now = self.clock()
        changes = await self.box.journal.transact(
            lambda tx: _record_and_publish(tx, received, now, self.board,
                                           self.pricing))
        if changes is None:
            _LOG.debug("live event %s repeated; nothing journaled", body["id"][:40])
            return False
        _LOG.debug("live event %s (%s) journaled", body["id"][:40], body["type"])
        return True

    async def add_integration(self, name: str) -> str:
        """Create an integration: secret to the state dir, its name to the journal."""
        return await add_integration(self.box, name, self.secrets)

    async def rotate_integration(self, name: str) -> str:
        """Give an integration a new secret; the old one fails from now on."""
        return await rotate_integration(self.box, name, self.secrets)

    async def remove_integration(self, name: str) -> None:
        """Remove an integration; its webhooks get 401 from now on."""
        await remove_integration(self.box, name, self.secrets)

    async def streams(self) -> list[dict[str, Any]]:
        """Return every stream with the sales and revenue attributed to it."""
        return await self.box.reader.run(stream_report)


def _record_and_publish(tx: Tx, received: events.Received, now_s: float,
                        board: LiveBoard, pricing: LivePricing
                        ) -> list[Any] | None:
    pricing.touch()  # before the rows change, so no sale trusts an old index
    changes = events.record(tx, received, now_s)
    for change in changes or ():
        tx.after_commit(functools.partial(change, board))
    return changes


async def add_integration(box: Stallbox, name: str,
                          known: dict[str, str] | None = None) -> str:
    """Make an integration's secret and journal that it exists; return the secret."""
    name = keyring.check_name(name)
    state = box.config.state_dir
    secret = await asyncio.to_thread(keyring.add, state, name)
    try:
        await box.journal.transact(lambda tx: _journal_integration(tx, name))
    except BaseException:
        await asyncio.to_thread(keyring.remove, state, name)
        raise
    if known is not None:
        known[name] = secret
    return secret


async def rotate_integration(box: Stallbox, name: str,
                             known: dict[str, str] | None = None) -> str:
    """Replace an integration's secret and journal that it changed (not the
    secret); return the new secret."""
    state = box.config.state_dir
    old = (await asyncio.to_thread(keyring.load, state)).get(name)
    if old is None:
        raise NotFoundError(f"no integration named {name[:40]!r}")
    secret = keyring.new_secret()
    await asyncio.to_thread(keyring.put, state, name, secret)
    try:
        await box.journal.transact(lambda tx: tx.append(
            "live.integration_rotated", {"name": name}))
    except BaseException:
        await asyncio.to_thread(keyring.put, state, name, old)
        raise
    if known is not None:
        known[name] = secret
    _LOG.info("live integration %r has a new secret", name)
    return secret


async def remove_integration(box: Stallbox, name: str,
                             known: dict[str, str] | None = None) -> None:
    """Forget an integration's secret first, then journal its removal."""
    state = box.config.state_dir
    if known is not None:
        known.pop(name, None)  # refused from this moment
    old = await asyncio.to_thread(keyring.remove, state, name)
    if old is None:
        raise NotFoundError(f"no integration named {name[:40]!r}")
    try:
        await box.journal.transact(lambda tx: _journal_removal(tx, name))
    except BaseException:
        await asyncio.to_thread(keyring.put, state, name, old)
        if known is not None:
            known[name] = old
        raise
    _LOG.info("live integration %r removed", name)


def _journal_removal(tx: Tx, name: str) -> None:
    tx.append("live.integration_removed", {"name": name})
    tx.execute("DELETE FROM live_integrations WHERE name = ?", (name,))


def _journal_integration(tx: Tx, name: str) -> None:
    seq = tx.append("live.integration_added", {"name": name}).seq
    tx.execute("INSERT INTO live_integrations (name, seq) VALUES (?, ?)", (name, seq))


def stream_report(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return streams with their attributed sale count and revenue.

    Only completed sales count: a card sale is attributed when it is opened
    and may still be waiting for the card or be cancelled unpaid.
    """
    rows = conn.execute(
        "SELECT s.id, s.platform, s.title, s.active, count(x.id),"
        " coalesce(sum(x.total_minor), 0) FROM live_streams s"
        " LEFT JOIN live_sales l ON l.stream_id = s.id"
        " LEFT JOIN sales x ON x.client_ref = l.client_ref"
        " AND x.status = 'completed'"
        " GROUP BY s.id ORDER BY s.started_t DESC, s.id").fetchall()
    return [{"stream_id": r[0], "platform": r[1], "title": r[2],
             "active": bool(r[3]), "sales": r[4], "revenue_minor": r[5]}
            for r in rows]


def live_for(box: object) -> LiveSelling:
    """Return the live selling state of one running daemon."""
    live = _LIVE.get(box)
    if live is None:
        live = _LIVE[box] = LiveSelling(box)  # type: ignore[arg-type]
    return live


def with_live_prices(box: Any, products: dict[str, Any],
                     lines: list[tuple[str, int]]) -> dict[str, Any]:
    """Return products at the live prices the board shows now (till quotes).

    The sale itself re-decides in its transaction (``pricing.py``); this only
    makes the till and the display show what the sale will most likely charge.
    """
    live = getattr(box, "live", None)
    if live is None or not live.board.offers:
        return products
    qty: dict[str, int] = {}
    for sku, n in lines:
        qty[sku] = qty.get(sku, 0) + n
    out = dict(products)
    for sku, product in products.items():
        if getattr(product, "gift_card", False):
            continue  # sold at its face value only
        price = live.board.live_price(sku, qty.get(sku, 1))
        if price is not None:
            out[sku] = live_product(product, price)
    return out
