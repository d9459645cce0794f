"""The card payment on the customer display: "tap card now", outcome, thank-you.

The terminal service tells its listeners every change of a payment at once
and in order (``TerminalService.listeners``): the start and each terminal
prompt as a small dict, each outcome as the whole intent. One task here takes
them in that order, so every prompt is shown, none after the outcome: the
sale's lines with what the customer should do, the outcome, and after an
approval the thank-you with the carbon estimate as for cash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from daemon.display.render import Money, render_cart, render_thanks
from daemon.errors import StallboxError

_LOG = logging.getLogger(__name__)
TAP_CARD = "Tap, insert or swipe card now"
NOTES = {
    "declined": "Card declined: nothing was charged",
    "aborted": "Payment cancelled: nothing was charged",
    "unknown": "One moment, please: checking the payment",
}
QUEUE_LIMIT = 256  # intents waiting to be shown; more are dropped (logged)
REMEMBERED = 16  # running payments whose sale is kept, oldest forgotten
Show = Callable[[str, str, str], None]  # (till, kind, HTML)


class CardView:
    """Follow card payments and show each on the displays of its till."""

    def __init__(self, read_sale: Callable[[str], Awaitable[dict[str, Any]]],
                 read_sale_id: Callable[[str], Awaitable[str]], money: Money,
                 show: Show, converted: Callable[[str, list[str]], Any]) -> None:
        self._read_sale = read_sale
        self._read_sale_id = read_sale_id
        self._converted = converted  # a paid card sale's skus, for conversions
        self._money = money
        self._show = show
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()  # pending
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start taking intents."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop taking intents."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def intent_changed(self, intent: dict[str, Any]) -> None:
        """Take a payment's change (a terminal service listener)."""
        if intent.get("type") != "payment":
            return  # card refunds are the staff's business
        try:
            self._queue.put_nowait(intent)
        except asyncio.QueueFull:
            _LOG.warning("display fell behind on card payments; %s not shown",
                         intent.get("id"))

    async def _run(self) -> None:
        while True:
            intent = await self._queue.get()
            try:
                await self.show(intent)
            except StallboxError as err:
                _LOG.debug("card payment %s not shown: %s", intent.get("id"), err)
            except Exception:
                _LOG.exception("showing card payment %s failed", intent.get("id"))

    async def show(self, intent: dict[str, Any]) -> None:
        """Show one change of a payment on its till's displays."""
        if intent["outcome"] == "pending":
            sale = await self._pending_sale(intent["id"])
        else:
            self._open.pop(intent["id"], None)
            sale = await self._read_sale(intent["sale_id"])
        till = str(sale.get("tablet", ""))
        if intent["outcome"] == "approved":
            self._show(till, "thanks", render_thanks(sale, self._money))
            self._converted(till, [str(ln.get("sku", "")) for ln in sale["lines"]])
            return
        self._show(till, "card", render_cart(
            sale["lines"], sale["total_minor"], self._money,
            note=self.note(intent, sale["total_minor"])))

    async def _pending_sale(self, intent_id: str) -> dict[str, Any]:
        """Return the sale a running payment is for (read once per payment)."""
        sale = self._open.get(intent_id)
        if sale is None:
            sale = await self._read_sale(await self._read_sale_id(intent_id))
            self._open[intent_id] = sale
            while len(self._open) > REMEMBERED:
                self._open.popitem(last=False)
        return sale

    def note(self, intent: dict[str, Any], total_minor: int) -> str:
        """Return what the customer reads under the cart."""
        outcome = intent["outcome"]
        if outcome != "pending":
            return NOTES.get(outcome, NOTES["unknown"])
        text = intent["prompt"] or TAP_CARD
        if intent["amount_minor"] != total_minor:  # a split: card pays a part
            text = f"{text} · Card {self._money(intent['amount_minor'])}"
        return text
