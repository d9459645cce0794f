"""A sale-sized commit over the WAL's old blocks, next to one that grows the WAL.

The journal's checkpoints restart the WAL without truncating it
(daemon/journal/store.py), so after one the commits' frames overwrite blocks
the file has, and their fdatasync writes data only. Both sides here use the
journal's page size and pragmas and commit one row into each of 21 tables: 22
frames of 536 bytes, what a cash sale writes (docs/appliance.md). The reusing
side first grows a WAL with the same commits and checkpoints it (RESTART).
They alternate in rounds, each in a fresh database, since this disk's fsync
time drifts from minute to minute. Bytes reaching the device come from
/proc/diskstats (the whole disk: other work adds to both sides).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.journal.store import NEW_JOURNAL_PAGE_SIZE

TABLES = 21  # + page 1: the 22 frames of a sale's commit
ROUNDS = 4


def _device(path: Path) -> str | None:
    """Return the /proc/diskstats name of the disk holding path, if known."""
    dev = os.stat(path).st_dev
    try:
        with open("/proc/diskstats", encoding="ascii") as stats:
            for line in stats:
                fields = line.split()
                if (int(fields[0]), int(fields[1])) == (os.major(dev), os.minor(dev)):
                    return fields[2]
    except OSError:
        return None
    return None


def _sectors_written(device: str | None) -> int:
    if device is None:
        return 0
    with open("/proc/diskstats", encoding="ascii") as stats:
        for line in stats:
            fields = line.split()
            if fields[2] == device:
                return int(fields[9])
    return 0


def _commit(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for table in range(TABLES):
        conn.execute(f"INSERT INTO t{table} (body) VALUES (?)",
                     (b"s" * 200 + str(n).encode(),))
    conn.execute("COMMIT")


def _commits(directory: Path, commits: int, reuse: bool,
             device: str | None) -> tuple[list[float], float]:
    """Time commits; return their durations (ms) and device bytes per commit."""
    conn = sqlite3.connect(directory / "journal.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA page_size = {NEW_JOURNAL_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints only as below
    for table in range(TABLES):
        conn.execute(f"CREATE TABLE t{table} (id INTEGER PRIMARY KEY, body BLOB)")
    if reuse:  # grow the WAL as far as the timed commits will go, then restart it
        for n in range(commits + 10):
            _commit(conn, n)
        conn.execute("PRAGMA wal_checkpoint(RESTART)")
    times = []
    start = _sectors_written(device)
    for n in range(commits):
        began = time.perf_counter()
        _commit(conn, n)
        times.append((time.perf_counter() - began) * 1000)
    written = (_sectors_written(device) - start) * 512 / commits
    conn.close()
    return times, written


def run(quick: bool, root: Path, figure: Callable[..., Any]) -> list[Any]:
    """Alternate rounds of commits over old WAL blocks and growing; compare."""
    per_round = 100 if quick else 400
    device = _device(root)
    times: dict[bool, list[float]] = {True: [], False: []}
    written: dict[bool, list[float]] = {True: [], False: []}
    for round_no in range(ROUNDS):
        for reuse in (False, True):
            directory = root / f"wal-{round_no}-{int(reuse)}"
            directory.mkdir(parents=True)
            round_times, round_bytes = _commits(directory, per_round, reuse, device)
            times[reuse] += round_times
            written[reuse].append(round_bytes)
    growing = "the same commit growing the WAL"
    figures = [figure("sale-sized commit over the WAL's old blocks, median",
                      statistics.median(times[True]), "ms",
                      growing, statistics.median(times[False]))]
    if device is not None:
        figures.append(figure(
            f"bytes reaching {device} per commit, over the WAL's old blocks",
            statistics.median(written[True]), "bytes",
            growing, statistics.median(written[False])))
    return figures
