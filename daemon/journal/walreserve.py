"""Keep the WAL file's blocks allocated ahead of the journal writer.

With ``synchronous=FULL`` every commit ends in an ``fdatasync`` of the WAL.
When the commit's frames made the file longer, that call must also commit the
file system's metadata for the new size and the new blocks (on ext4, a journal
commit of its own); when the frames land inside blocks the file already has,
it writes the data and nothing else. Measured on this project's ext4 disk
(``python scripts/bench.py wal``): a sale-sized commit of 22 frames of 536
bytes takes about half as long, and writes fewer bytes to the device, into
blocks already there than at the end of the file (docs/appliance.md).

SQLite appends to the WAL until a checkpoint lets it start again from the top,
and then overwrites the old frames: the file keeps its size unless a
``journal_size_limit`` or a ``TRUNCATE`` checkpoint cuts it. So the writer
(``store.Journal``) never truncates on its own account, SQLite cuts the file
only when it outgrew the limit, and this class writes zeros past the end of
the file whenever SQLite has written beyond what was reserved: one commit in
each ``RESERVE_CHUNK_BYTES`` of new WAL pays for growing the file, the rest
overwrite.

Safety: zeros go only past the file's current end, where no frame SQLite wrote
can lie, and only from the writer thread between two batches, when no other
connection writes the WAL (the journal has exactly one writer). SQLite reads
frames from the start of the file and stops at the first one whose salt or
checksum does not match the header (a zeroed frame never does), which is how
it already treats the old frames it left behind after a restart; a WAL that
is zeros from its first byte has no valid header and counts as empty.
"""

from __future__ import annotations

import logging
import os

_LOG = logging.getLogger(__name__)

RESERVE_CHUNK_BYTES = 1024 * 1024  # zeros written at a time past the WAL's end
_ZEROS = bytes(64 * 1024)


class WalReserve:
    """Zero-fill past the WAL's end whenever SQLite has written beyond the reserve."""

    def __init__(self, wal_path: str, chunk: int | None = None) -> None:
        self.path = wal_path
        self.chunk = RESERVE_CHUNK_BYTES if chunk is None else chunk
        # Where the last frame ends is not known here (a WAL left by a power
        # cut may end with one), so the first keep() grows the file.
        self.reserved = -1

    def keep(self, size: int) -> None:
        """Called by the writer between batches with the WAL file's size now.

        Grows the file by one chunk of zeros once SQLite wrote past the
        reserve; follows the file down when SQLite cut it (journal_size_limit).
        """
        if size < self.reserved:
            self.reserved = size
        elif size > self.reserved:
            self.reserved = self._extend(size)

    def _extend(self, size: int) -> int:
        """Write a chunk of zeros at the file's end, make it durable, and
        return the new size (the old one when the file cannot be written)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as err:  # no WAL yet (SQLite creates it) or unreadable
            _LOG.debug("WAL reserve: %s", err)
            return size
        try:
            end = os.fstat(fd).st_size
            if end != size:  # not what the writer saw: leave it for next time
                return end
            target = end + self.chunk
            while end < target:
                end += os.pwrite(fd, _ZEROS[:target - end], end)
            os.fdatasync(fd)  # the new size and blocks, once, off a sale's path
            return end
        except OSError as err:  # a full disk: the WAL grows as SQLite writes
            _LOG.warning("could not reserve WAL space: %s", err)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)
