"""The display on one running daemon: inventory, cache, pushes and counting.

Freshness rule: everything that changes what a slot shows — a creative saved
or retired, a catalog import (prices, products gone), a live pin, flash or
sale against a cap, a creative reaching its hourly cap — calls ``changed()``
from the ``after_commit`` of its journal transaction. That bumps the
inventory version, which is part of every cache key, so the first render
after the change is durable already misses; and a live price's exact expiry
bounds both the inventory and every cache entry's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from daemon.display import store
from daemon.display.cache import TTL_S, SlotCache
from daemon.display.hub import Hub, TillState
from daemon.display.measure import Measure, hour_of
from daemon.display.model import BUCKET_S, Cohort, Creative, Inventory, Pin, Slot
from daemon.display.payment import CardView
from daemon.display.render import REFRESH_S, render_page, render_slot
from daemon.display.select import select_slot
from daemon.errors import StallboxError
from daemon.payments import intents

if TYPE_CHECKING:
    from daemon.runtime import Stallbox

_LOG = logging.getLogger(__name__)
FLUSH_S = 60.0
THANKS_S = 20.0
HOUR_S = 3600
_DISPLAYS: weakref.WeakKeyDictionary[object, Display] = weakref.WeakKeyDictionary()


class Display:
    """Customer displays of one daemon."""

    def __init__(self, box: Stallbox, clock: Callable[[], float] = time.time
                 ) -> None:
        self.box = box
        self.clock = clock
        self.version = 0
        self.cache = SlotCache()
        self.hub = Hub()
        self.measure = Measure(box.config.display_conversion_window_s)
        self.creatives: list[Creative] = []
        self.catalog: dict[str, tuple[str, int]] = {}
        self._inventory: Inventory | None = None
        self._reload: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.card = CardView(box.sale, self._sale_of_payment, self.money,
                             self.show_state, self.sale_seen)

    async def open(self) -> None:
        """Load creatives, catalog and this hour's counts; start the tickers."""
        reader = self.box.reader
        self.creatives = await reader.run(store.load_creatives)
        self.catalog = await reader.run(store.load_catalog)
        hour = hour_of(self.clock())
        self.measure.hourly = await reader.run(lambda c: store.load_hourly(c, hour))
        self._tasks = [asyncio.create_task(self._tick()),
                       asyncio.create_task(self._flush_loop())]
        self.card.start()

    async def close(self) -> None:
        """End every stream, stop the tickers and journal what was counted."""
        self.hub.close_all()
        await self.card.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    def changed(self) -> None:
        """Note that the inventory changed (called after the change committed)."""
        self.version += 1
        self._inventory = None
        self._wake.set()

    def catalog_changed(self) -> None:
        """Note a committed catalog import; renders wait for the fresh catalog."""
        self.changed()
        self._reload = asyncio.ensure_future(self._load_catalog())

    async def _load_catalog(self) -> None:
        self.catalog = await self.box.reader.run(store.load_catalog)
        self.changed()
        self._reload = None

    def creatives_changed(self, creatives: list[Creative]) -> None:
        """Take the committed set of active creatives."""
        self.creatives = creatives
        self.changed()

    async def inventory(self) -> Inventory:
        """Return the current inventory, rebuilt when stale."""
        if self._reload is not None:
            await asyncio.shield(self._reload)
        now = self.clock()
        inventory = self._inventory
        if inventory is None or now >= inventory.valid_until_s:
            if inventory is not None:
                self.version += 1
            inventory = self._inventory = self._build(now)
        return inventory

    def _build(self, now: float) -> Inventory:
        board = self.box.live.board if self.box.live is not None else None
        pins = tuple(Pin(o.sku, o.price_for(1, now), o.until_s, o.kind)
                     for o in (board.pins() if board else ())
                     if o.sku in self.catalog)
        hour = hour_of(now)
        capped = frozenset(
            c.id for c in self.creatives if c.cap_per_hour
            and self.measure.hourly.get(("c:" + c.id, hour), 0) >= c.cap_per_hour)
        hour_end = (now // HOUR_S + 1) * HOUR_S
        until = min(board.next_change_s() if board else float("inf"), hour_end)
        return Inventory(self.version, tuple(self.creatives), pins,
                         dict(self.catalog), capped, until)

    def slot_html(self, inventory: Inventory, cohort: Cohort, bucket: int,
                  now: float) -> tuple[Slot, str]:
        """Return the bucket's slot and its HTML, from the cache when fresh."""
        slot = select_slot(inventory, cohort, bucket)
        key = (cohort.key(), slot.id, inventory.version, bucket)
        html = self.cache.get(key, now)
        if html is None:
            html = render_slot(slot, inventory, self.money,
                               self.box.config.stall.name)
            deadline = min(now + TTL_S, (bucket + 1) * BUCKET_S,
                           inventory.valid_until_s)
            self.cache.put(key, html, deadline)
        return slot, html

    def money(self, minor: int) -> str:
        """Format an amount as on the till pages."""
        currency = self.box.config.stall.currency
        return f"{currency.format(minor)} {currency.symbol}"

    async def page(self, till: str, cohort: Cohort, display: str,
                   events_url: str) -> str:
        """Return the whole display page with the slot's creative in it."""
        now = self.clock()
        inventory = await self.inventory()
        slot, slot_html = self.slot_html(inventory, cohort, int(now // BUCKET_S),
                                         now)
        state = self.hub.state(till, now)
        # A display without JS reloads sooner while a customer is at the till;
        # each reload then counts the seconds until the next one.
        self.count(display, till, slot, cohort, now,
                   REFRESH_S.get(state.kind, BUCKET_S))
        return render_page(lang=cohort.lang, stall=self.box.config.stall.name,
                           size=cohort.size, state=state.kind, events=events_url,
                           cart=state.text(), slot=slot_html)

    def count(self, display: str, till: str, slot: Slot, cohort: Cohort,
              now: float, seconds: int = BUCKET_S) -> None:
        """Count a slot shown for seconds; re-select when a cap is reached."""
        shown = self.measure.shown(display, till, slot, cohort.key(), seconds, now)
        creative = slot.creative
        if creative is not None and creative.cap_per_hour == shown:
            self.changed()

    def show_cart(self, till: str, html: str) -> None:
        """Push a till's cart (empty HTML: idle) to its displays."""
        self.hub.publish(till, TillState("cart" if html else "idle", html))

    def show_thanks(self, till: str, html: str = "",
                    make: Callable[[], str] | None = None) -> None:
        """Push the thank-you after a sale (HTML, or how to make it) to the
        till's displays."""
        self.hub.publish(till, TillState("thanks", html, self.clock() + THANKS_S,
                                         make))

    async def _sale_of_payment(self, intent_id: str) -> str:
        intent = await self.box.reader.run(lambda c: intents.get_intent(c, intent_id))
        return str(intent["sale_id"])

    def show_state(self, till: str, kind: str, html: str) -> None:
        """Push a till's state of any kind (a card payment's included)."""
        if kind == "thanks":
            self.show_thanks(till, html)
        else:
            self.hub.publish(till, TillState(kind, html))

    def sale_seen(self, till: str, skus: Iterable[str]) -> None:
        """Count conversions of a committed sale."""
        self.measure.sale(till, skus, self.clock())

    async def push_slots(self, counted: bool) -> None:
        """Send each connected display its slot when it changed."""
        now = self.clock()
        self.hub.expire(now)
        inventory = await self.inventory()
        bucket = int(now // BUCKET_S)
        for sub in self.hub.subscribers():
            slot, html = self.slot_html(inventory, sub.cohort, bucket, now)
            if counted:
                self.count(sub.display, sub.till, slot, sub.cohort, now)
            if sub.slot_key != (slot.id, inventory.version):
                sub.slot_key = (slot.id, inventory.version)
                self.hub.send(sub, ("slot", html))

    async def _tick(self) -> None:
        while True:
            now = self.clock()
            timed_out = False
            try:
                async with asyncio.timeout(BUCKET_S - now % BUCKET_S + 0.01):
                    await self._wake.wait()
            except TimeoutError:
                timed_out = True
            self._wake.clear()
            try:
                await self.push_slots(timed_out)
            except Exception:
                _LOG.exception("pushing slots to displays failed")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        """Journal the pending impressions and conversions as one event."""
        rows = self.measure.drain()
        if not rows:
            return
        try:
            await self.box.journal.transact(
                lambda tx: store.record_measurements(tx, rows))
        except StallboxError as err:
            _LOG.warning("display measurements not journaled yet: %s", err)
            self.measure.restore(rows)


def display_for(box: object) -> Display:
    """Return the display state of one running daemon."""
    display = _DISPLAYS.get(box)
    if display is None:
        display = _DISPLAYS[box] = Display(box)  # type: ignore[arg-type]
    return display


def creative_dicts(creatives: Iterable[Creative]) -> list[dict[str, Any]]:
    """Return creatives as JSON for the API."""
    return [c.to_json() for c in creatives]
