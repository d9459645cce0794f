"""Rendered slot HTML per (cohort, slot, inventory version, bucket).

An entry is dropped at its deadline: the sooner of a short TTL, the end of
its bucket and the inventory's next change (a live price expiring), so a hit
never outlives the facts it was rendered from. A change that is journaled
bumps the inventory version, and the version is in the key: the next render
misses. Old versions age out by deadline; the size bound stops growth.
"""

from __future__ import annotations

import logging

_LOG = logging.getLogger(__name__)
TTL_S = 10.0
MAX_ENTRIES = 1024
Key = tuple[str, str, int, int]


class SlotCache:
    """A small dict of rendered slots with deadlines."""

    def __init__(self) -> None:
        self._entries: dict[Key, tuple[float, str]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Key, now_s: float) -> str | None:
        """Return the cached HTML, or None when absent or past its deadline."""
        entry = self._entries.get(key)
        if entry is None or now_s >= entry[0]:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(self, key: Key, html: str, deadline_s: float) -> None:
        """Keep html until deadline_s."""
        if len(self._entries) >= MAX_ENTRIES:
            self._evict(deadline_s - TTL_S)
        self._entries[key] = (deadline_s, html)

    def _evict(self, now_s: float) -> None:
        self._entries = {k: v for k, v in self._entries.items() if v[0] > now_s}
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
