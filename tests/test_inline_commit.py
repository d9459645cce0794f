"""A lone transaction commits on the event loop's thread; concurrent ones and
those of a slow disk go through the writer thread and share its commits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.errors import InputError, RetryLaterError
from daemon.journal import store
from daemon.journal.store import Journal, Tx
from daemon.journal.verify import verify_journal


@pytest.fixture
async def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Every commit counts as quick, however busy the test machine's disk;
    # test_a_slow_disk_keeps_every_commit_on_the_writer sets the other end.
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 60.0)
    j = Journal.open(tmp_path / "j.sqlite3")
    for _ in range(store.INLINE_WINDOW):  # the disk proves itself quick
        await j.append("warm.up", {})
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
    assert result.ok and result.events == store.INLINE_WINDOW + 2


async def test_a_fresh_journal_commits_inline_once_its_disk_proved_quick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 60.0)
    journal = Journal.open(tmp_path / "j.sqlite3")
    names = [await _sale_like(journal) for _ in range(store.INLINE_WINDOW)]
    await journal.close()
    first = store.INLINE_WINDOW - store.INLINE_SLOW_ALLOWED
    assert set(names[:first]) == {"journal-writer"}
    assert set(names[first:]) == {_loop_thread()}


async def test_concurrent_transactions_go_to_the_writer_and_share_commits(
        journal: Journal) -> None:
    statements = _commits(journal)
    names = await asyncio.gather(*(_sale_like(journal) for _ in range(20)))
    assert set(names) == {"journal-writer"}
    assert statements.count("COMMIT") <= 10  # 20 sales, shared commits
    result = verify_journal(journal.path)
    assert result.ok and result.events == store.INLINE_WINDOW + 20


async def test_only_a_transaction_that_may_runs_inline(journal: Journal) -> None:
    assert await journal.transact(_thread_of) == "journal-writer"
    assert await _sale_like(journal) == _loop_thread()


async def test_a_disk_turning_slow_sends_sales_back_to_the_writer(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 0.0)  # every commit slow
    for _ in range(store.INLINE_SLOW_ALLOWED + 1):
        assert await _sale_like(journal) == _loop_thread()
    for _ in range(3):
        assert await _sale_like(journal) == "journal-writer"


async def test_one_quick_commit_among_slow_ones_keeps_sales_on_the_writer(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 0.0)
    for _ in range(10):
        await journal.append("slow", {})
    monkeypatch.setattr(store, "INLINE_COMMIT_MAX_S", 60.0)
    await journal.append("quick", {})  # the last commit was quick; 10 of 64 not
    assert await _sale_like(journal) == "journal-writer"


async def test_a_commit_near_the_automatic_checkpoint_goes_to_the_writer(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = journal._checkpoint_frames  # the WAL holds a few hundred frames
    monkeypatch.setattr(store, "INLINE_WAL_HEADROOM_FRAMES", limit - 10_000)
    assert await _sale_like(journal) == _loop_thread()
    monkeypatch.setattr(store, "INLINE_WAL_HEADROOM_FRAMES", limit - 1)
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
    assert result.ok and result.events == store.INLINE_WINDOW + 2


async def test_a_failing_lone_transaction_rolls_back_and_the_next_continues(
        journal: Journal) -> None:
    def bad(tx: Tx) -> None:
        tx.append("t", {"doomed": True})
        raise InputError("no")

    with pytest.raises(InputError):
        await journal.transact(bad, may_run_inline=True)
    assert (await journal.append("t", {"ok": True})).seq == store.INLINE_WINDOW + 1
    result = verify_journal(journal.path)
    assert result.ok and result.events == store.INLINE_WINDOW + 1


async def test_deferred_work_rides_with_an_inline_commit(journal: Journal) -> None:
    journal.defer(lambda tx: tx.append("deferred", {}), max_delay_s=60)
    await _writer_took_the_wake(journal)
    assert await _sale_like(journal) == _loop_thread()
    assert journal.deferred_count() == 0
    result = verify_journal(journal.path)
    assert result.ok and result.events == store.INLINE_WINDOW + 2


async def _writer_took_the_wake(journal: Journal) -> None:
    for _ in range(1000):  # until the writer took defer()'s wake-up
        if journal._queue.empty():
            return
        await asyncio.sleep(0.001)


def _hold_the_loop_until(done: Callable[[], bool]) -> None:
    """Block the event loop's thread (as a long callback would) until done()."""
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)


async def test_after_commit_callbacks_run_in_commit_order(journal: Journal) -> None:
    order: list[str] = []

    def first(tx: Tx) -> None:
        tx.append("one", {})
        tx.after_commit(lambda: order.append("first"))

    def second(tx: Tx) -> str:
        tx.append("two", {})
        tx.after_commit(lambda: order.append("second"))
        return threading.current_thread().name

    loop = asyncio.get_running_loop()
    journal.defer(first, max_delay_s=0.05)
    await _writer_took_the_wake(journal)
    sale = asyncio.ensure_future(journal.transact(second, may_run_inline=True))
    await asyncio.sleep(0)  # the sale now waits in its one turn of the loop
    _hold_the_loop_until(  # the writer commits `first` and lets go of the connection
        lambda: bool(journal._wakes.get(loop)) and not journal._conn_lock.locked())
    assert await sale == _loop_thread()  # committed after `first`, on the loop
    assert order == ["first", "second"]


async def test_a_sale_racing_close_is_refused_not_left_waiting(
        journal: Journal) -> None:
    sale = asyncio.ensure_future(_sale_like(journal))
    closing = asyncio.ensure_future(journal.close())
    with pytest.raises(RetryLaterError):
        await asyncio.wait_for(sale, timeout=10)
    await closing


# The WAL trim that falls due after an inline commit, done by the writer
# thread: tests/test_wal_reuse.py (_append_and_trim).
