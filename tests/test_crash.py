"""Crash consistency: SIGKILL the daemon under load; no acknowledged sale is lost."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from pathlib import Path

import aiohttp
import pytest

from scripts.daemonproc import DaemonProcess, run_cli, write_config

pytestmark = pytest.mark.slow
CATALOG = (b"sku,name,price,tax_class\nTEE,Kr\xc3\xa4utertee,\"3,20\",reduced\n"
           b"SEIFE,Seife,\"5,90\",standard\n")
CLIENTS = 6
ROUNDS = 4


def _pair(state: Path, url: str) -> str:
    code = run_cli("pair", "--state", str(state)).stdout.strip().splitlines()[-1]

    async def exchange() -> str:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(url + "api/v1/pair",
                                      json={"code": code, "name": "crash"})
            assert resp.status == 201, await resp.text()
            return (await resp.json())["token"]

    return asyncio.run(exchange())


async def _sell_until_dead(url: str, token: str, acked: dict[str, str],
                           sent: set[str], rng: random.Random) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        while True:
            ref = uuid.UUID(int=rng.getrandbits(128)).hex
            sent.add(ref)
            body = {"client_ref": ref, "lines": [{"sku": "TEE", "qty": 2},
                                                 {"sku": "SEIFE", "qty": 1}],
                    "payment": {"method": "cash", "tendered_minor": 2000}}
            try:
                resp = await session.post(url + "api/v1/sales", json=body)
                data = await resp.json()
            except (TimeoutError, aiohttp.ClientError):
                return
            if resp.status in (200, 201):
                acked[ref] = data["id"]


async def _load(url: str, token: str, acked: dict[str, str], sent: set[str],
                daemon: DaemonProcess, rng: random.Random) -> None:
    tasks = [asyncio.create_task(_sell_until_dead(url, token, acked, sent,
                                                  random.Random(rng.random())))
             for _ in range(CLIENTS)]
    await asyncio.sleep(rng.uniform(0.3, 1.5))
    daemon.kill()
    await asyncio.gather(*tasks)


def test_sigkill_under_load_loses_no_acknowledged_sale(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state)
    rng = random.Random(20261204)
    acked: dict[str, str] = {}
    sent: set[str] = set()
    daemon = DaemonProcess(config)
    token = _pair(state, daemon.url)
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    imported = run_cli("import-catalog", str(catalog), "--state", str(state))
    assert imported.returncode == 0, imported.stderr
    for _ in range(ROUNDS):
        asyncio.run(_load(daemon.url, token, acked, sent, daemon, rng))
        daemon = DaemonProcess(config)
    daemon.terminate()
    assert len(acked) > 20, "the load never got going"
    conn = sqlite3.connect(state / "journal.sqlite3")
    stored = dict(conn.execute("SELECT client_ref, id FROM sales"))
    sale_events = conn.execute(
        "SELECT count(*) FROM events WHERE kind = 'sale.completed'").fetchone()[0]
    conn.close()
    missing = {ref for ref in acked if stored.get(ref) != acked[ref]}
    assert not missing, f"{len(missing)} acknowledged sales lost"
    assert sale_events == len(stored), "sale events and sales rows disagree"
    assert set(stored) <= sent
    verify = run_cli("verify", "--state", str(state))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_sigterm_exits_cleanly_and_releases_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state)
    daemon = DaemonProcess(config)
    assert daemon.terminate() == 0
    again = DaemonProcess(config)
    assert again.terminate() == 0


def test_second_daemon_on_the_same_state_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state)
    daemon = DaemonProcess(config)
    try:
        second = run_cli("serve", "--config", str(config), timeout_s=30)
        assert second.returncode == 1
        assert "in use by a running daemon" in second.stderr
    finally:
        daemon.terminate()
