"""Server-sent events to displays: one queue per connected display.

Each till has a state (idle, cart, thank-you) that a display linked to it
shows; a change is pushed to every display of that till at once. A display
that stops reading fills its queue and is dropped; its browser's EventSource
reconnects and gets the current state first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from daemon.display.model import Cohort

_LOG = logging.getLogger(__name__)
QUEUE_LIMIT = 32
Message = tuple[str, str] | None  # (event name, HTML), None closes the stream


@dataclass(slots=True, eq=False)
class Subscriber:
    """One connected display."""

    till: str
    cohort: Cohort
    display: str  # the display's device key, for impression counting
    queue: asyncio.Queue[Message] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    slot_key: tuple[str, int] = ("", -1)  # (slot id, version) last pushed


@dataclass(slots=True)
class TillState:
    """What a till's displays show besides the slot.

    ``make`` renders the HTML when a display first needs it, so a sale on a
    till no display follows costs no render.
    """

    kind: str = "idle"  # "idle", "cart", "card" (a card payment) or "thanks"
    html: str = ""
    until_s: float = 0.0  # thanks: when to go back to idle
    make: Callable[[], str] | None = None

    def text(self) -> str:
        """Return the HTML, rendering it once."""
        if self.make is not None:
            self.html, self.make = self.make(), None
        return self.html


class Hub:
    """Subscribers by till, and each till's current state."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscriber]] = {}
        self._tills: dict[str, TillState] = {}

    def subscribe(self, till: str, cohort: Cohort, display: str) -> Subscriber:
        """Register a display for a till's pushes."""
        sub = Subscriber(till, cohort, display)
        self._subs.setdefault(till, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a display whose stream ended."""
        subs = self._subs.get(sub.till)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.till]

    def subscribers(self) -> list[Subscriber]:
        """Return every connected display."""
        return [sub for subs in self._subs.values() for sub in subs]

    def state(self, till: str, now_s: float) -> TillState:
        """Return a till's state; a thank-you past its time reads as idle."""
        state = self._tills.get(till)
        if state is None or (state.kind == "thanks" and now_s >= state.until_s):
            return TillState()
        return state

    def publish(self, till: str, state: TillState) -> None:
        """Set a till's state and push it to its displays."""
        self._tills[till] = state
        for sub in list(self._subs.get(till, ())):
            self.send(sub, (state.kind, state.text()))

    def expire(self, now_s: float) -> None:
        """Push idle to the displays of tills whose thank-you is over."""
        for till, state in list(self._tills.items()):
            if state.kind == "thanks" and now_s >= state.until_s:
                self.publish(till, TillState())

    def send(self, sub: Subscriber, message: Message) -> None:
        """Queue a message for one display; drop the display if it lags."""
        try:
            sub.queue.put_nowait(message)
        except asyncio.QueueFull:
            _LOG.debug("display of till %r lags; closing its stream", sub.till)
            _drain(sub.queue)
            sub.queue.put_nowait(None)
            self.unsubscribe(sub)

    def close_all(self) -> None:
        """End every stream (daemon stopping)."""
        for sub in self.subscribers():
            _drain(sub.queue)
            sub.queue.put_nowait(None)
        self._subs.clear()


def _drain(queue: asyncio.Queue[Message]) -> None:
    while not queue.empty():
        queue.get_nowait()
