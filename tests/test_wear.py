"""SD-card wear: small pages for new journals, a WAL kept under a bound."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from daemon.journal import store
from daemon.journal.store import Journal


async def test_new_journal_gets_small_pages_and_a_size_limit(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    await journal.append("test.event", {"n": 1})
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    assert conn.execute("PRAGMA page_size").fetchone()[0] == store.NEW_JOURNAL_PAGE_SIZE
    conn.close()
    limit = await journal.transact(
        lambda tx: tx.execute("PRAGMA journal_size_limit").fetchone()[0])
    assert limit == store.JOURNAL_SIZE_LIMIT_BYTES
    await journal.close()


async def test_existing_journal_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE before_wal (x)")
    conn.close()
    journal = Journal.open(path)
    await journal.append("test.event", {"n": 1})
    await journal.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    conn.close()


async def test_wal_is_cut_back_once_a_long_reader_lets_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "WAL_BOUND_BYTES", 256 * 1024)
    monkeypatch.setattr(store, "JOURNAL_SIZE_LIMIT_BYTES", 32 * 1024)
    path = tmp_path / "j.sqlite3"
    journal = Journal.open(path)
    await journal.append("test.event", {"n": 0})
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events").fetchone()
    blob = "x" * 2000
    for n in range(300):
        await journal.append("test.event", {"n": n, "pad": blob})
    grown = journal.wal_bytes()
    assert grown > store.WAL_BOUND_BYTES  # the reader pins the old frames
    reader.execute("COMMIT")
    reader.close()
    # The writer checkpoints right after it answered; the next commit starts
    # the WAL from the top and SQLite cuts the file to the size limit.
    small = 32 * 1024 + 8 * 1024
    for n in range(100):
        await journal.append("test.event", {"n": f"after {n}"})
        if journal.wal_bytes() < small:
            break
        await asyncio.sleep(0.02)
    assert journal.wal_bytes() < small < grown
    await journal.close()


async def test_deferred_record_rides_with_the_next_commit(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    await journal.append("test.event", {"n": 0})
    journal.defer(lambda tx: tx.append("test.deferred", {}), max_delay_s=60.0)
    await asyncio.sleep(0.2)
    assert journal.head_seq == 1 and journal.deferred_count() == 1  # no commit yet
    event = await journal.append("test.event", {"n": 1})
    assert (event.seq, journal.deferred_count()) == (3, 0)  # deferred one went first
    kinds = await journal.transact(lambda tx: [r[0] for r in tx.execute(
        "SELECT kind FROM events ORDER BY seq")])
    assert kinds == ["test.event", "test.deferred", "test.event"]
    await journal.close()


async def test_deferred_record_commits_alone_after_its_delay_and_at_close(
        tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    journal.defer(lambda tx: tx.append("test.deferred", {"n": 1}), max_delay_s=0.2)
    for _ in range(100):
        if journal.head_seq == 1:
            break
        await asyncio.sleep(0.05)
    assert journal.head_seq == 1 and journal.deferred_count() == 0
    journal.defer(lambda tx: tx.append("test.deferred", {"n": 2}), max_delay_s=3600)
    await journal.close()
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
    conn.close()


async def test_a_failing_deferred_record_is_dropped_not_the_batch(
        tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")

    def broken(tx: store.Tx) -> None:
        tx.append("test.deferred", {})
        raise ValueError("no such job")

    journal.defer(broken, max_delay_s=60.0)
    event = await journal.append("test.event", {})
    assert event.seq == 1  # the broken one rolled back to its savepoint
    await journal.close()


async def test_cursor_commits_do_not_carry_deferred_records(tmp_path: Path) -> None:
    """The sync cursor's commit must not add events that call for another ack."""
    journal = Journal.open(tmp_path / "j.sqlite3")
    journal.defer(lambda tx: tx.append("test.deferred", {}), max_delay_s=60.0)
    event = await journal.transact(lambda tx: tx.append("sync.acked", {}),
                                   carry_deferred=False)
    assert event.seq == 1 and journal.deferred_count() == 1
    await journal.close()
    assert journal.deferred_count() == 0
