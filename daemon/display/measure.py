"""Impressions and conversions, counted in memory and journaled as aggregates.

Nothing here knows a customer: an impression is "slot S was on a display of
cohort C for n seconds", a conversion is "a sale on till T contained the
product slot S promoted within WINDOW_S after a display of T showed it".
Counts are kept per (slot, UTC hour, cohort) and journaled every FLUSH_S as
one ``display.measured`` event, which the sync ships for advertiser billing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from daemon.display.model import Slot

_LOG = logging.getLogger(__name__)
CONVERSION_WINDOW_S = 600.0
RECENT_PER_TILL = 64
Key = tuple[str, str, str]  # (slot id, hour, cohort key)


@dataclass(slots=True)
class Counts:
    """Aggregates of one slot in one hour for one cohort."""

    impressions: int = 0
    shown_s: int = 0
    conversions: int = 0


def hour_of(unix_s: float) -> str:
    """Return the UTC hour label of a time, e.g. 2025-06-01T14."""
    return _hour_label(int(unix_s // 3600))


@functools.lru_cache(maxsize=64)
def _hour_label(hour: int) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(hour * 3600))


class Measure:
    """Counters waiting to be journaled, and what each display last showed."""

    def __init__(self, window_s: float = CONVERSION_WINDOW_S) -> None:
        self.window_s = window_s
        self.pending: dict[Key, Counts] = {}
        self.hourly: dict[tuple[str, str], int] = {}  # (slot, hour) -> impressions
        self._last: dict[str, str] = {}  # display key -> slot id
        self._recent: dict[str, deque[tuple[float, str, str, str]]] = {}

    def shown(self, display: str, till: str, slot: Slot, cohort: str,
              seconds: int, now_s: float) -> int:
        """Count a slot on a display; return its impressions this hour."""
        hour = hour_of(now_s)
        counts = self.pending.setdefault((slot.id, hour, cohort), Counts())
        counts.shown_s += seconds
        if self._last.get(display) != slot.id:
            self._last[display] = slot.id
            counts.impressions += 1
            self.hourly[(slot.id, hour)] = self.hourly.get((slot.id, hour), 0) + 1
        if slot.sku and till:
            recent = self._recent.setdefault(till, deque(maxlen=RECENT_PER_TILL))
            recent.append((now_s, slot.id, slot.sku, cohort))
        return self.hourly.get((slot.id, hour), 0)

    def sale(self, till: str, skus: Iterable[str], now_s: float) -> int:
        """Count conversions of a sale on a till; return how many."""
        sold = set(skus)
        seen: set[str] = set()
        for shown_s, slot_id, sku, cohort in self._recent.get(till, ()):
            if sku in sold and slot_id not in seen and now_s - shown_s <= self.window_s:
                seen.add(slot_id)
                key = (slot_id, hour_of(now_s), cohort)
                self.pending.setdefault(key, Counts()).conversions += 1
        return len(seen)

    def drain(self) -> list[dict[str, Any]]:
        """Take the pending aggregates as journal rows."""
        rows = [{"slot": k[0], "hour": k[1], "cohort": k[2],
                 "impressions": c.impressions, "shown_s": c.shown_s,
                 "conversions": c.conversions}
                for k, c in sorted(self.pending.items())]
        self.pending = {}
        return rows

    def restore(self, rows: Iterable[dict[str, Any]]) -> None:
        """Put rows back after a failed journal write."""
        for row in rows:
            counts = self.pending.setdefault(
                (row["slot"], row["hour"], row["cohort"]), Counts())
            counts.impressions += row["impressions"]
            counts.shown_s += row["shown_s"]
            counts.conversions += row["conversions"]
