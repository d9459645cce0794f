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
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 1024
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
    await journal.append("test.event", {"n": "after"})
    # The writer trims right after it answered; a commit landing after the
    # trim (a seal, say) may add a few pages back, so "cut back" is the test.
    small = 16 * 1024
    for _ in range(100):
        if journal.wal_bytes() < small:
            break
        await asyncio.sleep(0.02)
    assert journal.wal_bytes() < small < grown
    await journal.close()
