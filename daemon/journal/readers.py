"""Read-only access to the journal for pages and the API, off the event loop.

Each reader thread holds its own ``mode=ro`` connection and runs a whole read
function in one hop, the same pattern as the writer; WAL lets them read a
consistent snapshot while the writer commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from daemon.journal.verify import open_readonly

T = TypeVar("T")
READER_THREADS = 2


class Reader:
    """A small pool of read-only connections, one per thread."""

    def __init__(self, path: Path, threads: int = READER_THREADS) -> None:
        self._path = path
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="journal-reader")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_readonly(self._path)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) in a reader thread inside one read snapshot."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    def close(self) -> None:
        """Close every reader connection (after the pool has drained)."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
