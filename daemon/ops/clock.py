"""The clock: NTP sync state read from the kernel, and a manager's correction.

A Pi has no battery-backed clock, so after a power cut without network the time
can start in the past. The daemon never orders by wall time (the journal's seq
is the order); it records whether the clock was synchronised when a sale was
made, and lets a manager correct the time from a page.

Why an offset and not setting the system clock: setting it needs CAP_SYS_TIME,
which the unit's empty capability set and NoNewPrivileges deny on purpose, and a
setuid helper would be a privileged surface reachable from a tablet. Instead the
page journals the correction (``clock.corrected``) and the daemon adds the
offset to its own timestamps until the kernel clock is synchronised again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_LOG = logging.getLogger(__name__)
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
STA_UNSYNC = 0x0040  # adjtimex(2) status bit
CHECK_INTERVAL_S = 30.0
MAX_CORRECTION_S = 10 * 365 * 24 * 3600


class _Timex(ctypes.Structure):
    """struct timex of adjtimex(2) on Linux; only modes and status are read."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long),
                ("freq", ctypes.c_long), ("maxerror", ctypes.c_long),
                ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_byte * 256)]


def kernel_synced() -> bool | None:
    """Return the kernel's NTP sync state (adjtimex read-only); None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()  # modes = 0: read only, no privilege needed
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def read_synced() -> tuple[bool | None, str]:
    """Return (synced, source): the kernel first, then systemd-timesyncd's flag."""
    synced = kernel_synced()
    if synced is not None:
        return synced, "adjtimex"
    if TIMESYNC_FLAG.parent.is_dir():
        return TIMESYNC_FLAG.exists(), "timesyncd"
    return None, "unknown"


@dataclass(slots=True)
class Clock:
    """The daemon's view of the time: sync state and the manager's offset."""

    synced: bool | None = None
    source: str = "unknown"
    offset_s: float = 0.0
    checked_monotonic: float = 0.0

    def refresh(self) -> None:
        """Re-read the sync state at most every CHECK_INTERVAL_S."""
        now = time.monotonic()
        if self.checked_monotonic and now - self.checked_monotonic < CHECK_INTERVAL_S:
            return
        was = self.synced
        self.synced, self.source = read_synced()
        self.checked_monotonic = now
        if self.synced and self.offset_s:
            _LOG.info("clock synchronised (%s); manager's offset dropped", self.source)
            self.offset_s = 0.0
        elif was is not False and self.synced is False:
            _LOG.warning("clock not synchronised (%s); sales are flagged", self.source)

    def unsynced(self) -> bool:
        """Return True when the clock is known unsynchronised and uncorrected."""
        self.refresh()
        return self.synced is False and not self.offset_s

    def now(self) -> datetime:
        """Return the corrected UTC time."""
        now = datetime.now(UTC)
        # Every event is stamped with this; without a correction (the usual
        # case) adding a zero timedelta would cost more than reading the time.
        return now + timedelta(seconds=self.offset_s) if self.offset_s else now

    def trusted(self) -> bool:
        """Return True when timestamps can be believed (synced or corrected)."""
        return bool(self.synced) or self.offset_s != 0.0

    def state_dict(self) -> dict[str, object]:
        """Return the clock entry of /healthz."""
        self.refresh()
        state = "synced" if self.synced else (
            "corrected" if self.offset_s else
            "unknown" if self.synced is None else "unsynced")
        return {"state": state, "source": self.source,
                "offset_s": round(self.offset_s, 3), "now": self.now().isoformat(
                    timespec="seconds").replace("+00:00", "Z")}


CLOCK = Clock()


def corrected_utc() -> datetime:
    """Return the UTC time the journal stamps events with."""
    return CLOCK.now()


def correction_for(wanted: datetime) -> float:
    """Return the offset that makes the daemon's time read `wanted` now."""
    if wanted.tzinfo is None:
        raise ValueError("the time needs a zone")
    offset = (wanted - datetime.now(UTC)).total_seconds()
    if abs(offset) > MAX_CORRECTION_S:
        raise ValueError("that time is more than ten years away")
    return offset
