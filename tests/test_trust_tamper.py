"""verify against SQL-level tampering: TEXT bodies (both walks) and removed seals."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main as cli_main
from daemon.config import Config
from daemon.journal import verify
from daemon.journal.verify import verify_journal
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from tests.conftest import auth, pair
from tests.test_trust import _device_public, _journal_after_a_shift, _tamper

TEXT_EDITS = {
    "cast": "UPDATE events SET body = CAST(body AS TEXT) WHERE seq = ?",
    "substr": "UPDATE events SET body = substr(body, 1, 10) || x'20' ||"
              " substr(body, 11) WHERE seq = ?",
}


@pytest.mark.parametrize("edit", sorted(TEXT_EDITS))
@pytest.mark.parametrize("processes", [1, 2, None])
async def test_a_text_body_is_named_by_both_walks(
        aiohttp_client: Any, config: Config, tmp_path: Path, edit: str,
        processes: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """None: the automatic choice, with the split threshold lowered to this journal."""
    monkeypatch.setattr(verify, "PARALLEL_MIN_EVENTS", 2)
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    conn = sqlite3.connect(src)
    seq = conn.execute("SELECT seq FROM events WHERE kind = 'sale.completed'"
                       " ORDER BY seq DESC LIMIT 1").fetchone()[0]
    conn.close()
    dst = _tamper(src, tmp_path / "j.sqlite3", TEXT_EDITS[edit], (seq,))
    assert sqlite3.connect(dst).execute(
        "SELECT typeof(body) FROM events WHERE seq = ?", (seq,)).fetchone() == ("text",)
    result = verify_journal(dst, device, observers=replay_observers(),
                            processes=processes)
    assert result.bad_seq == seq and "TEXT" in result.reason, result
    assert verify_journal(src, device, observers=replay_observers(),
                          processes=processes).ok


def _seals(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, epoch FROM seals ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_removing_every_seal_of_an_epoch_is_named(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    seals = _seals(src)
    epochs = {epoch for _, epoch in seals}
    assert epochs == {1, 2}, seals  # every epoch committed a seal with its rotation
    for epoch in sorted(epochs):
        dst = _tamper(src, tmp_path / f"e{epoch}.sqlite3",
                      "DELETE FROM seals WHERE epoch = ?", (epoch,))
        result = verify_journal(dst, device)
        assert not result.ok and f"epoch {epoch}" in result.reason, result
        assert "no seal" in result.reason


async def test_a_removed_seal_with_a_later_one_in_its_epoch_is_not_named(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    """By design (docs/trust.md): seals fall where commits end, not at seqs the
    walk can predict, and the later seal authenticates the whole prefix."""
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    seals = _seals(src)
    kept = [s for s in seals if sum(e == s[1] for _, e in seals) > 1]
    if not kept:
        pytest.skip("no epoch with two seals in this journal")
    first = min(seq for seq, _ in kept)
    dst = _tamper(src, tmp_path / "mid.sqlite3", "DELETE FROM seals WHERE seq = ?",
                  (first,))
    result = verify_journal(dst, device)
    assert result.ok and result.seals == len(seals) - 1


STRAY_SALE = ("INSERT INTO sales (id, seq, client_ref, created_at, tablet, total_minor,"
              " currency, status, receipt) SELECT 'ffffffffffffffff', ?,"
              " 'zzzzzzzzzzzz', created_at, tablet, total_minor, currency, status,"
              " receipt FROM sales WHERE status = 'completed' LIMIT 1")


@pytest.mark.parametrize("seq", [0, -1, (1 << 62) + 1, (1 << 63) - 1, 100_000])
@pytest.mark.parametrize("processes", [1, 2])
async def test_a_sales_row_at_a_seq_no_event_has_is_named(
        aiohttp_client: Any, config: Config, tmp_path: Path, seq: int,
        processes: int) -> None:
    """Below the first seq and past the replay's last range too (break test)."""
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    dst = _tamper(src, tmp_path / "stray.sqlite3", STRAY_SALE, (seq,))
    result = verify_journal(dst, device, observers=replay_observers(),
                            processes=processes)
    assert result.bad_seq == seq and "no event made" in result.reason, result


async def test_a_stray_sales_row_hides_itself_not_the_sales_list(
        aiohttp_client: Any, config: Config) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    conn = sqlite3.connect(state / JOURNAL_FILE)
    genuine = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
    conn.execute(STRAY_SALE, (0,))
    conn.commit()
    conn.close()
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    resp = await client.get("/api/v1/sales", headers=auth(token))
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert len(items) == genuine and "ffffffffffffffff" not in {s["id"] for s in items}


def _killed(*_args: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def test_a_killed_chain_process_is_incomplete_not_broken(
        aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 3 and a plain line, not exit 1 (a broken journal) with a traceback."""
    state = await _journal_after_a_shift(aiohttp_client, config)
    monkeypatch.setattr(verify, "_chain_child", _killed)  # forked: the child runs it
    with pytest.raises(verify.WalkIncomplete, match="signal 9"):
        verify_journal(state / JOURNAL_FILE, _device_public(state),
                       observers=replay_observers(), processes=2)
    monkeypatch.setattr(verify, "PARALLEL_MIN_EVENTS", 2)
    assert cli_main(["verify", "--state", str(state)]) == 3
    err = capsys.readouterr().err  # (an earlier test's log handler may complain)
    last = err.strip().splitlines()[-1]
    assert last.startswith("stallbox verify: could not finish") and "signal 9" in last
    assert "WalkIncomplete" not in err and "BROKEN" not in err


CHILD_OF_A_KILLED_VERIFY = """
import sys, time
from pathlib import Path
from daemon.journal import verify
from daemon.trust.replay import replay_observers

def chain_child(*_args):
    verify._die_with_parent()
    Path(sys.argv[2]).write_text(str(__import__("os").getpid()))
    time.sleep(60)

verify._chain_child = chain_child
verify.verify_journal(Path(sys.argv[1]), None, observers=replay_observers(),
                      processes=2)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has died


def _kill_verify_and_watch_its_child(journal: Path, pid_file: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD_OF_A_KILLED_VERIFY,
                               str(journal), str(pid_file)],
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.kill()  # SIGKILL: no atexit, no finally in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the chain process outlived verify"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


async def test_the_chain_process_dies_with_a_killed_verify(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    _kill_verify_and_watch_its_child(state / JOURNAL_FILE, tmp_path / "child.pid")
