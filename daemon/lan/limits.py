"""Count guesses (pairing codes, manager PINs) per client and overall.

An attempt is counted when it starts, not when it fails: a burst of concurrent
guesses cannot all slip past the check while the first ones are still being
verified. A correct guess takes its own count back.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from daemon.errors import RateLimitedError

FAILURES_PER_CLIENT = 5
FAILURES_GLOBAL = 30
FAILURE_WINDOW_S = 600.0
MAX_CLIENTS = 10_000  # bound memory under a spray of client addresses


@dataclass
class AttemptLimiter:
    """Refuse guesses once a client, or everyone together, guessed wrong too often."""

    what: str = "tries"
    window_s: float = FAILURE_WINDOW_S
    per_client: int = FAILURES_PER_CLIENT
    overall: int = FAILURES_GLOBAL
    _by_client: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def check(self, client: str) -> None:
        """Raise RateLimitedError when this client or everyone failed too often."""
        now = time.monotonic()
        mine = self._trim(self._by_client.get(client, deque()), now)
        everyone = self._trim(self._all, now)
        if len(mine) >= self.per_client or len(everyone) >= self.overall:
            oldest = (mine if len(mine) >= self.per_client else everyone)[0]
            wait_s = int(self.window_s - (now - oldest)) + 1
            raise RateLimitedError(
                f"too many wrong {self.what}; try again in {wait_s} s",
                retry_after_s=wait_s)

    def begin(self, client: str) -> float:
        """Check, then count one attempt as failed until succeeded() says otherwise."""
        self.check(client)
        return self.failed(client)

    def succeeded(self, client: str, stamp: float) -> None:
        """Take back the attempt begin() counted: the guess was right."""
        for stamps in (self._by_client.get(client), self._all):
            if stamps is not None and stamp in stamps:
                stamps.remove(stamp)

    def failed(self, client: str) -> float:
        """Record one wrong guess from client and return its time stamp."""
        now = time.monotonic()
        if len(self._by_client) >= MAX_CLIENTS and client not in self._by_client:
            self._by_client.clear()
        self._by_client.setdefault(client, deque()).append(now)
        self._all.append(now)
        return now

    def _trim(self, stamps: deque[float], now: float) -> deque[float]:
        while stamps and now - stamps[0] > self.window_s:
            stamps.popleft()
        return stamps
