"""Live-stream integrations: rotate a secret, remove an integration (#8)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from daemon.errors import NotFoundError
from daemon.live import keyring
from daemon.live.service import live_for
from daemon.live.signature import HEADER, sign
from daemon.runtime import JOURNAL_FILE
from daemon.web.keys import STALLBOX
from scripts.daemonproc import DaemonProcess, run_cli, write_config
from tests.livehelpers import EVENTS, deliver, head_seq, integration


def started() -> dict[str, str]:
    return {"id": uuid.uuid4().hex, "type": "stream.started", "stream_id": "S-1"}


def journal_text(state_dir: Path) -> str:
    conn = sqlite3.connect(f"file:{state_dir / JOURNAL_FILE}?mode=ro", uri=True)
    try:
        return "\n".join(bytes(row[0]).decode() for row in conn.execute(
            "SELECT body FROM events ORDER BY seq"))
    finally:
        conn.close()


async def test_a_rotated_secret_replaces_the_old_one(client: TestClient,
                                                     state_dir: Path) -> None:
    old = await integration(client, "obs")
    live = live_for(client.app[STALLBOX])
    new = await live.rotate_integration("obs")
    assert new != old and new.startswith(keyring.SECRET_PREFIX)
    before = head_seq(client)
    assert (await deliver(client, old, started())).status == 401
    assert head_seq(client) == before  # nothing journaled for a refused event
    assert (await deliver(client, new, started())).status == 202
    assert keyring.load(state_dir) == {"obs": new}
    text = journal_text(state_dir)
    assert "live.integration_rotated" in text
    assert new not in text and old not in text  # secrets never in the journal


async def test_a_removed_integration_is_refused(client: TestClient,
                                                state_dir: Path) -> None:
    secret = await integration(client, "obs")
    other = await integration(client, "tiktok-bridge")
    live = live_for(client.app[STALLBOX])
    await live.remove_integration("obs")
    assert (await deliver(client, secret, started())).status == 401
    assert (await deliver(client, other, started())).status == 202
    assert keyring.load(state_dir) == {"tiktok-bridge": other}
    assert "live.integration_removed" in journal_text(state_dir)
    assert await integration(client, "obs") != secret  # the name is free again


@pytest.mark.parametrize("name", ["nobody", "", "x" * 500, "../etc", "obs\n"])
async def test_unknown_names_are_not_found_and_change_nothing(
        client: TestClient, state_dir: Path, name: str) -> None:
    await integration(client, "obs")
    live = live_for(client.app[STALLBOX])
    seq = head_seq(client)
    with pytest.raises(NotFoundError):
        await live.rotate_integration(name)
    with pytest.raises(NotFoundError):
        await live.remove_integration(name)
    assert head_seq(client) == seq
    assert list(keyring.load(state_dir)) == ["obs"]


def test_cli_rotates_and_removes_without_a_daemon(tmp_path: Path) -> None:
    write_config(tmp_path / "stallbox.toml", tmp_path / "state")
    state = str(tmp_path / "state")
    added = run_cli("integration", "add", "obs", "--state", state)
    assert added.returncode == 0, added.stderr
    rotated = run_cli("integration", "rotate", "obs", "--state", state)
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.strip().splitlines()[-1]
    assert secret != added.stdout.strip().splitlines()[-1]
    path = tmp_path / "state" / keyring.FILE_NAME
    assert json.loads(path.read_text()) == {"obs": secret}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    removed = run_cli("integration", "remove", "obs", "--state", state)
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert json.loads(path.read_text()) == {}
    missing = run_cli("integration", "remove", "obs", "--state", state)
    assert missing.returncode != 0 and "no integration" in missing.stderr
    assert secret not in missing.stderr + removed.stdout


@pytest.mark.slow
def test_cli_rotates_and_removes_through_the_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path / "stallbox.toml", tmp_path / "state")
    daemon = DaemonProcess(config)
    state = str(tmp_path / "state")
    try:
        added = run_cli("integration", "add", "obs", "--state", state)
        assert added.returncode == 0, added.stderr
        old = added.stdout.strip().splitlines()[-1]
        rotated = run_cli("integration", "rotate", "obs", "--state", state)
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip().splitlines()[-1]
        assert asyncio.run(_post(daemon.url, old)) == 401  # refused at once
        assert asyncio.run(_post(daemon.url, new)) == 202
        removed = run_cli("integration", "remove", "obs", "--state", state)
        assert removed.returncode == 0, removed.stderr
        assert asyncio.run(_post(daemon.url, new)) == 401
    finally:
        assert daemon.terminate() == 0


async def _post(url: str, secret: str) -> int:
    raw = json.dumps(started()).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url + EVENTS.lstrip("/"), data=raw, headers={
                HEADER: sign(secret, int(time.time()), raw),
                "Content-Type": "application/json"}) as resp:
            return resp.status
