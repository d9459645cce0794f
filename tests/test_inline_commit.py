"""A lone transaction commits on the event loop's thread; concurrent ones and
those of a slow disk go through the writer thread and share its commits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from daemon.errors import InputError
from daemon.journal import store
from daemon.journal.store import Journal, Tx
from daemon.journal.verify import verify_journal


@pytest.fixture
async def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Every commit counts as quick, however busy the test machine's disk;
    # test_a_slow_disk_keeps_every_commit_on_the_writer sets the other end.
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 60.0)
    j = Journal.open(tmp_path / "j.sqlite3")
    await j.append("warm.up", {})  # the first commit measures the disk
    yield j
    await j.close()


def _thread_of(tx: Tx) -> str:
    tx.append("t", {})
    return threading.current_thread().name


async def _sale_like(journal: Journal) -> str:
    """Run a transaction that may run inline; return the thread it ran on."""
    return await journal.transact(_thread_of, may_run_inline=True)


def _loop_thread() -> str:
    return threading.current_thread().name


def _commits(journal: Journal) -> list[str]:
    statements: list[str] = []
    journal._conn.set_trace_callback(statements.append)
    return statements


async def test_a_lone_transaction_commits_on_the_loop_thread(
        journal: Journal) -> None:
    assert await _sale_like(journal) == _loop_thread()
    assert await _sale_like(journal) == _loop_thread()
    result = verify_journal(journal.path)
    assert result.ok and result.events == 3


async def test_concurrent_transactions_go_to_the_writer_and_share_commits(
        journal: Journal) -> None:
    statements = _commits(journal)
    names = await asyncio.gather(*(_sale_like(journal) for _ in range(20)))
    assert set(names) == {"journal-writer"}
    assert statements.count("COMMIT") <= 10  # 20 sales, shared commits
    result = verify_journal(journal.path)
    assert result.ok and result.events == 21


async def test_only_a_transaction_that_may_runs_inline(journal: Journal) -> None:
    assert await journal.transact(_thread_of) == "journal-writer"
    assert await _sale_like(journal) == _loop_thread()


async def test_a_slow_disk_keeps_every_commit_on_the_writer(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 0.0)
    assert await _sale_like(journal) == "journal-writer"
    assert await _sale_like(journal) == "journal-writer"


async def test_a_busy_writer_takes_the_lone_transaction_after_its_batch(
        journal: Journal) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(tx: Tx) -> None:
        started.set()
        release.wait(10)
        tx.append("slow", {})

    journal.defer(slow, max_delay_s=0)  # the writer runs it, holding the connection
    assert await asyncio.to_thread(started.wait, 10)
    second = asyncio.ensure_future(_sale_like(journal))
    await asyncio.sleep(0.05)
    assert not second.done()  # it waits for the connection, it does not share it
    release.set()
    assert await second == "journal-writer"
    result = verify_journal(journal.path)
    assert result.ok and result.events == 3


async def test_a_failing_lone_transaction_rolls_back_and_the_next_continues(
        journal: Journal) -> None:
    def bad(tx: Tx) -> None:
        tx.append("t", {"doomed": True})
        raise InputError("no")

    with pytest.raises(InputError):
        await journal.transact(bad, may_run_inline=True)
    assert (await journal.append("t", {"ok": True})).seq == 2
    result = verify_journal(journal.path)
    assert result.ok and result.events == 2


async def test_deferred_work_rides_with_an_inline_commit(journal: Journal) -> None:
    journal.defer(lambda tx: tx.append("deferred", {}), max_delay_s=60)
    for _ in range(1000):  # until the writer took defer()'s wake-up
        if journal._queue.empty():
            break
        await asyncio.sleep(0.001)
    assert await _sale_like(journal) == _loop_thread()
    assert journal.deferred_count() == 0
    result = verify_journal(journal.path)
    assert result.ok and result.events == 3


# The WAL trim that falls due after an inline commit, done by the writer
# thread: tests/test_wal_reuse.py (_append_and_trim).
