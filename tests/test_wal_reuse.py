"""The WAL keeps its blocks: after a checkpoint, commits overwrite old frames."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.journal import store
from daemon.journal.store import Journal
from daemon.journal.verify import verify_journal

PAD = "p" * 1500  # an event of a few frames, like a sale


def _size(path: Path) -> int:
    return path.stat().st_size


def _valid_frames_end(wal: Path) -> int:
    """Return where the WAL's frames end, from a copy SQLite recovers."""
    copy = wal.parent / "copy"
    copy.mkdir(exist_ok=True)
    shutil.copy(wal.with_name(wal.name.removesuffix("-wal")), copy / "j.sqlite3")
    shutil.copy(wal, copy / "j.sqlite3-wal")
    conn = sqlite3.connect(copy / "j.sqlite3", isolation_level=None)
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    shutil.rmtree(copy)
    return 32 + frames * (page + 24)


async def _append_and_trim(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Append one event, have the 30-minute trim fall due and wait for it:
    after a commit on the event loop the writer thread checkpoints."""
    before = journal._last_trim_monotonic
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 60.0)  # however slow the disk
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 0.0)
    await journal.transact(lambda tx: tx.append("test.trimmed", {}),
                           may_run_inline=True)
    for _ in range(500):
        if journal._last_trim_monotonic != before:
            break
        await asyncio.sleep(0.01)
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 3600.0)
    assert journal._last_trim_monotonic != before


async def test_a_checkpointed_wal_is_overwritten_not_truncated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    wal = Path(f"{journal.path}-wal")
    for n in range(60):
        await journal.append("test.event", {"n": n, "pad": PAD})
    await _append_and_trim(journal, monkeypatch)
    grown = _size(wal)
    for n in range(10):
        await journal.append("test.after", {"n": n, "pad": PAD})
    assert _size(wal) == grown  # restarted from the top, same blocks
    assert _valid_frames_end(wal) < grown // 2
    events = await journal.transact(
        lambda tx: tx.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert events == 71 and verify_journal(journal.path).ok
    await journal.close()


async def test_what_the_disk_holds_after_a_restart_recovers_every_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A power cut after the WAL restarted: old frames lie past the new ones."""
    journal = Journal.open(tmp_path / "live" / "j.sqlite3")
    for n in range(100):
        await journal.append("test.event", {"n": n, "pad": PAD})
    await _append_and_trim(journal, monkeypatch)
    for n in range(20):
        await journal.append("test.after", {"n": n, "pad": PAD})
    cut = tmp_path / "cut"
    cut.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{journal.path}{suffix}", cut / f"j.sqlite3{suffix}")
    await journal.close()
    wal = cut / "j.sqlite3-wal"
    assert _size(wal) > 2 * _valid_frames_end(wal)  # old frames behind the new
    reopened = Journal.open(cut / "j.sqlite3")
    assert reopened.head_seq == 121
    await reopened.append("test.event", {"n": "after the cut"})
    await reopened.close()
    assert verify_journal(cut / "j.sqlite3").ok
