"""The disk reserve: refuse new sales before the journal could fill the disk.

SQLite never corrupts a WAL journal when a write fails for lack of space (the
commit fails and is rolled back), but a full SD card also stops the logs and
the OS. So the daemon keeps a reserve free and refuses new sales with a clear
message once free space falls below it; anything already journaled is kept.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import RetryLaterError

_LOG = logging.getLogger(__name__)
CHECK_INTERVAL_S = 1.0  # statvfs is cheap, but not per request under load


class DiskFullError(RetryLaterError):
    """Raised when free space is below the reserve; a manager must free space."""


@dataclass(slots=True)
class DiskGuard:
    """Free space of the state dir's filesystem against the configured reserve."""

    path: Path
    reserve_bytes: int
    free_bytes: int = -1
    total_bytes: int = 0
    checked_monotonic: float = 0.0
    low: bool = False

    def refresh(self, *, force: bool = False) -> None:
        """Re-read free space at most every CHECK_INTERVAL_S."""
        now = time.monotonic()
        if not force and now - self.checked_monotonic < CHECK_INTERVAL_S:
            return
        try:
            st = os.statvfs(self.path)
        except FileNotFoundError:  # no state dir yet: no journal to fill the disk
            self.checked_monotonic = now
            return
        except OSError as err:
            _LOG.warning("cannot read free space of %s: %s", self.path, err)
            return
        self.free_bytes, self.total_bytes = st.f_bavail * st.f_frsize, \
            st.f_blocks * st.f_frsize
        self.checked_monotonic = now
        low = self.free_bytes < self.reserve_bytes
        if low != self.low:
            log = _LOG.error if low else _LOG.info
            log("disk free %d MB, reserve %d MB: sales %s", self.free_bytes >> 20,
                self.reserve_bytes >> 20, "refused" if low else "accepted again")
        self.low = low

    def check(self) -> None:
        """Raise DiskFullError when free space is below the reserve."""
        self.refresh()
        if self.low:
            raise DiskFullError(
                f"the box's storage is nearly full ({self.free_bytes >> 20} MB free, "
                f"{self.reserve_bytes >> 20} MB kept in reserve): no new sales. "
                "Sales made so far are safe. Ask the manager to free space or "
                "replace the SD card.")

    def state_dict(self) -> dict[str, object]:
        """Return the disk entry of /healthz."""
        self.refresh()
        return {"state": "low" if self.low else "ok", "free_bytes": self.free_bytes,
                "total_bytes": self.total_bytes, "reserve_bytes": self.reserve_bytes}
