"""Sync inside the daemon: /healthz, the sync API, parking while the till sells, CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.keys.device import DeviceIdentity
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from sync.errors import BatchRejected
from tests.conftest import auth, make_config, pair
from tests.synchelpers import STALL, Receiver
from tests.test_api import sale_body, stock

REPO = Path(__file__).resolve().parent.parent


class Gate:
    """A receiver-side check that refuses batches until opened."""

    def __init__(self) -> None:
        self.refusing = False

    def __call__(self, stall: object, batch: object) -> None:
        if self.refusing:
            raise BatchRejected(422, "Invalid batch", "events[0].data.fee is required",
                                field="events[0].data.fee")


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def receiver(tmp_path: Path, state_dir: Path,
                   gate: Gate) -> AsyncIterator[Receiver]:
    rec = await Receiver(tmp_path / "receiver", verifiers=[gate]).start()
    await rec.enrol(DeviceIdentity.load_or_create(state_dir))
    yield rec
    await rec.stop()


@pytest.fixture
async def synced(aiohttp_client: Any, state_dir: Path,
                 receiver: Receiver) -> TestClient:
    config = make_config(state_dir, sync={"url": receiver.url, "stall_id": STALL,
                                          "interval_s": 3600})
    return await aiohttp_client(create_app(config))


async def test_healthz_reports_sync(synced: TestClient) -> None:
    token = await pair(synced)
    await stock(synced, token)
    await synced.post("/api/v1/sales", headers=auth(token),
                      json=sale_body([("BROT", 1)], 500))
    health = await (await synced.get("/healthz")).json()
    assert {"acked_seq", "backlog", "state"} <= set(health["sync"])
    await synced.app[STALLBOX].sync.sync_now()
    health = await (await synced.get("/healthz")).json()
    assert health["sync"]["backlog"] == 0
    assert health["sync"]["acked_seq"] == health["journal_seq"]


async def test_a_422_parks_sync_the_till_still_sells_and_retry_resumes(
        synced: TestClient, gate: Gate, receiver: Receiver) -> None:
    token = await pair(synced)
    await stock(synced, token)
    gate.refusing = True
    status = await synced.app[STALLBOX].sync.sync_now()
    assert status["state"] == "parked"
    resp = await synced.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 2)], 1000))
    assert resp.status == 201
    shown = await (await synced.get("/api/v1/sync", headers=auth(token))).json()
    assert shown["state"] == "parked"
    assert "events[0].data.fee is required" in shown["last_error"]
    health = await (await synced.get("/healthz")).json()
    assert "data.fee" in health["sync"]["last_error"]
    gate.refusing = False
    resp = await synced.post("/api/v1/sync/retry", headers=auth(token))
    assert resp.status == 202
    async with asyncio.timeout(10):
        await synced.app[STALLBOX].sync.sync_now()
    shown = await (await synced.get("/api/v1/sync", headers=auth(token))).json()
    assert (shown["state"], shown["backlog"]) == ("idle", 0)
    assert shown["last_error"] == ""


async def test_sync_routes_need_a_token(synced: TestClient) -> None:
    assert (await synced.get("/api/v1/sync")).status == 401
    assert (await synced.post("/api/v1/sync/retry")).status == 401


# -- the contract, through the real processes ----------------------------------------


def cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


@pytest.mark.slow
def test_cli_identity_enroll_receiver_and_sync_now(tmp_path: Path) -> None:
    from scripts.daemonproc import DaemonProcess, write_config

    state, data = tmp_path / "state", tmp_path / "receiver"
    key = cli("identity", "--state", str(state)).stdout.strip().splitlines()[-1]
    enrolled = cli("receiver", "enroll", "--data", str(data), "--stall", "stall-9",
                   "--public-key", key)
    assert enrolled.returncode == 0, enrolled.stderr
    receiver = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "receiver", "--host", "127.0.0.1",
         "--port", "0", "--data", str(data)], cwd=REPO, stderr=subprocess.PIPE,
        text=True)
    try:
        url = _serving_url(receiver)
        config = write_config(tmp_path / "stallbox.toml", state,
                              f'[sync]\nurl = "{url}"\nstall_id = "stall-9"\n'
                              'interval_s = 3600\n')
        daemon = DaemonProcess(config)
        try:
            cli("pair", "--state", str(state))
            synced = cli("sync", "--now", "--config", str(config))
            assert synced.returncode == 0, synced.stdout + synced.stderr
            assert "sync idle" in synced.stdout
            health = get_json(daemon.url + "healthz")
            stall = get_json(f"{url}v1/stalls/stall-9")
        finally:
            daemon.terminate()
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        assert receiver.stderr is not None
        receiver.stderr.close()
    assert stall["last_seq"] == stall["events_stored"] >= 2
    assert health["sync"]["acked_seq"] >= stall["last_seq"] - 1


def _serving_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        if "receiver serving on" in line:
            return line.split("serving on ")[1].split()[0]
    raise AssertionError("receiver did not start")
