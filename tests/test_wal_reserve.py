"""The WAL keeps its blocks: zeros past its end, overwritten by later commits."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from daemon.journal import store, walreserve
from daemon.journal.store import Journal
from daemon.journal.verify import verify_journal
from daemon.journal.walreserve import WalReserve

CHUNK = 64 * 1024
PAD = "p" * 1500  # an event of a few frames, like a sale


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walreserve, "RESERVE_CHUNK_BYTES", CHUNK)


def _zeros(path: Path, size: int) -> None:
    path.write_bytes(bytes(size))


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


async def test_a_new_journal_has_its_reserve_before_the_first_sale(
        tmp_path: Path, small_chunks: None) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    wal = Path(f"{journal.path}-wal")
    reserved = _size(wal)
    assert reserved >= CHUNK
    await journal.append("test.event", {"n": 0, "pad": PAD})
    # the commit's frames went into the zeros: the file did not grow
    assert _size(wal) == reserved
    assert _valid_frames_end(wal) < reserved
    await journal.close()


async def test_the_reserve_grows_a_chunk_once_sqlite_wrote_past_it(
        tmp_path: Path, small_chunks: None) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    wal = Path(f"{journal.path}-wal")
    grew = 0
    for n in range(120):  # ~4 chunks of frames
        before = _size(wal)
        await journal.append("test.event", {"n": n, "pad": PAD})
        grew += _size(wal) != before
    end = _valid_frames_end(wal)
    size = _size(wal)
    # zeros lie past the last frame; the file grew by chunks, not per commit
    assert end < size <= end + CHUNK + 8 * 1024
    assert 3 <= grew <= 8
    assert verify_journal(journal.path).ok
    await journal.close()


async def test_a_checkpointed_wal_is_overwritten_not_truncated(
        tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal.open(tmp_path / "j.sqlite3")
    wal = Path(f"{journal.path}-wal")
    for n in range(60):
        await journal.append("test.event", {"n": n, "pad": PAD})
    grown = _size(wal)
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 0.0)  # the 30-minute trim
    await journal.append("test.trimmed", {})  # checkpointed after this batch
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 3600.0)
    for n in range(10):
        await journal.append("test.after", {"n": n, "pad": PAD})
    assert _size(wal) == grown  # restarted from the top, same blocks
    assert _valid_frames_end(wal) < grown // 2
    events = await journal.transact(
        lambda tx: tx.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert events == 71 and verify_journal(journal.path).ok
    await journal.close()


async def test_what_the_disk_holds_mid_day_recovers_every_commit(
        tmp_path: Path, small_chunks: None) -> None:
    """A power cut: copy the files of a live journal, open the copy."""
    journal = Journal.open(tmp_path / "live" / "j.sqlite3")
    for n in range(150):
        await journal.append("test.event", {"n": n, "pad": PAD})
    cut = tmp_path / "cut"
    cut.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(f"{journal.path}{suffix}", cut / f"j.sqlite3{suffix}")
    await journal.close()
    assert _size(cut / "j.sqlite3-wal") > _valid_frames_end(
        cut / "j.sqlite3-wal")  # zeros past the frames
    reopened = Journal.open(cut / "j.sqlite3")
    assert reopened.head_seq == 150
    await reopened.append("test.event", {"n": "after the cut"})
    await reopened.close()
    assert verify_journal(cut / "j.sqlite3").ok


async def test_a_wal_of_zeros_from_its_first_byte_counts_as_empty(
        tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal.open(path)
    await journal.append("test.event", {"n": 1})
    await journal.close()  # a clean close checkpoints and removes the WAL
    _zeros(Path(f"{path}-wal"), 3 * 4096)  # a reserve, no header yet
    journal = Journal.open(path)
    assert journal.head_seq == 1
    await journal.append("test.event", {"n": 2})
    await journal.close()
    assert verify_journal(path).ok


async def test_a_wal_cut_back_by_sqlite_is_followed_down(
        tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "JOURNAL_SIZE_LIMIT_BYTES", 2 * CHUNK)
    journal = Journal.open(tmp_path / "j.sqlite3")
    wal = Path(f"{journal.path}-wal")
    for n in range(150):
        await journal.append("test.event", {"n": n, "pad": PAD})
    grown = _size(wal)
    assert grown > 3 * CHUNK
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 0.0)
    await journal.append("test.trimmed", {})  # checkpointed after this batch
    monkeypatch.setattr(store, "WAL_TRIM_INTERVAL_S", 3600.0)
    for n in range(5):
        await journal.append("test.after", {"n": n})
    assert _size(wal) <= 2 * CHUNK + CHUNK  # the limit, then a reserve
    assert journal._reserve.reserved == _size(wal)
    await journal.close()


def test_reserve_never_writes_over_the_files_bytes(tmp_path: Path) -> None:
    wal = tmp_path / "x-wal"
    wal.write_bytes(b"\x01" * 1000)
    reserve = WalReserve(str(wal), chunk=4096)
    reserve.keep(1000)
    data = wal.read_bytes()
    assert data[:1000] == b"\x01" * 1000 and data[1000:] == bytes(4096)
    assert reserve.reserved == 5096
    reserve.keep(5096)  # SQLite wrote inside the reserve: nothing to do
    assert _size(wal) == 5096


def test_reserve_leaves_a_file_that_changed_under_it(tmp_path: Path) -> None:
    wal = tmp_path / "x-wal"
    wal.write_bytes(b"\x01" * 3000)
    reserve = WalReserve(str(wal), chunk=4096)
    reserve.keep(1000)  # a stale size: the file is not what the writer saw
    assert wal.read_bytes() == b"\x01" * 3000
    assert reserve.reserved == 3000


def test_reserve_without_a_file_or_a_writable_one_does_nothing(
        tmp_path: Path) -> None:
    missing = WalReserve(str(tmp_path / "none-wal"), chunk=4096)
    missing.keep(0)
    assert not (tmp_path / "none-wal").exists() and missing.reserved == 0
    odd = tmp_path / "dir-wal"
    odd.mkdir()  # not a file: cannot be opened for writing, even by root
    reserve = WalReserve(str(odd), chunk=4096)
    reserve.keep(10)
    assert reserve.reserved == 10 and not any(odd.iterdir())
