"""The journal: append, chain, group commit, append-only, verify and replay."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from daemon.errors import InputError
from daemon.journal.canonical import GENESIS_HASH, canonical_bytes, chain_hash
from daemon.journal.store import Journal
from daemon.journal.verify import verify_journal


@pytest.fixture
async def journal(tmp_path: Path):
    j = Journal.open(tmp_path / "j.sqlite3")
    yield j
    await j.close()


async def test_append_links_each_event_to_the_previous(journal: Journal) -> None:
    first = await journal.append("test.one", {"n": 1})
    second = await journal.append("test.two", {"n": 2})
    assert (first.seq, second.seq) == (1, 2)
    conn = sqlite3.connect(journal.path)
    rows = conn.execute("SELECT seq, body, prev_hash, hash FROM events").fetchall()
    assert bytes(rows[0][2]) == GENESIS_HASH
    assert bytes(rows[1][2]) == bytes(rows[0][3])
    assert bytes(rows[1][3]) == chain_hash(bytes(rows[0][3]), bytes(rows[1][1]))


async def test_pragmas_hold(journal: Journal) -> None:
    def read(_tx):
        conn = journal._conn
        return [conn.execute(f"PRAGMA {p}").fetchone()[0]
                for p in ("journal_mode", "synchronous", "busy_timeout")]

    assert await journal.transact(read) == ["wal", 2, 5000]


async def test_concurrent_appends_share_commits_and_stay_gap_free(
        journal: Journal) -> None:
    events = await asyncio.gather(*(journal.append("t", {"i": i}) for i in range(300)))
    assert sorted(e.seq for e in events) == list(range(1, 301))
    assert verify_journal(journal.path).ok


async def test_failed_function_rolls_back_only_itself(journal: Journal) -> None:
    def bad(tx):
        tx.append("t", {"doomed": True})
        raise InputError("no")

    results = await asyncio.gather(journal.append("t", {"a": 1}),
                                   journal.transact(bad),
                                   journal.append("t", {"b": 2}),
                                   return_exceptions=True)
    assert isinstance(results[1], InputError)
    assert [r.seq for r in (results[0], results[2])] == [1, 2]
    result = verify_journal(journal.path)
    assert result.ok and result.events == 2


async def test_events_cannot_be_updated_or_deleted(journal: Journal) -> None:
    await journal.append("t", {"a": 1})
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await journal.transact(lambda tx: tx.execute("UPDATE events SET kind = 'x'"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await journal.transact(lambda tx: tx.execute("DELETE FROM events"))


async def test_floats_are_refused_in_bodies(journal: Journal) -> None:
    with pytest.raises(TypeError, match="float"):
        await journal.append("t", {"price": 1.5})
    assert journal.head_seq == 0


async def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal.open(path)
    await j.append("t", {"a": 1})
    await j.close()
    j = Journal.open(path)
    event = await j.append("t", {"a": 2})
    await j.close()
    assert event.seq == 2
    assert verify_journal(path).ok


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("DROP TRIGGER events_append_only_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("sql", "bad_seq", "reason"), [
    ("UPDATE events SET body = CAST(replace(body, '\"a\":3', '\"a\":4') AS BLOB)"
     " WHERE seq = 3", 3, "hash"),  # replace() makes TEXT: cast back to a BLOB here
    ("UPDATE events SET body = replace(body, '\"a\":3', '\"a\":4') WHERE seq = 3",
     3, "TEXT"),
    ("DELETE FROM events WHERE seq = 2", 2, "gap"),
    ("UPDATE events SET kind = 'forged' WHERE seq = 4", 4, "columns"),
])
async def test_verify_names_the_first_bad_seq(tmp_path: Path, sql: str,
                                              bad_seq: int, reason: str) -> None:
    path = tmp_path / "j.sqlite3"
    j = Journal.open(path)
    for i in range(1, 6):
        await j.append("t", {"a": i})
    await j.close()
    _tamper(path, sql)
    result = verify_journal(path)
    assert result.bad_seq == bad_seq
    assert reason in result.reason


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    assert canonical_bytes({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


async def test_a_failing_after_commit_callback_strands_no_caller(
        journal: Journal) -> None:
    seen: list[int] = []

    def listener_fails(tx):
        tx.after_commit(lambda: 1 / 0)
        return tx.append("t", {"a": 1}).seq

    def listener_works(tx):
        event = tx.append("t", {"b": 2})
        tx.after_commit(lambda: seen.append(event.seq))
        return event.seq

    results = await asyncio.wait_for(asyncio.gather(
        journal.transact(listener_fails), journal.transact(listener_works),
        journal.append("t", {"c": 3})), timeout=10)

    assert [results[0], results[1], results[2].seq] == [1, 2, 3]
    assert seen == [2]
