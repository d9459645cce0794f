"""SIGKILL of the daemon between the terminal's approval and its completion.

The simulated terminal lives in this test process, outside the killed daemon,
on a real pty; the daemon is a real `stallbox serve` process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from device.sim.zvt_terminal import ZvtTerminalSim
from scripts.daemonproc import DaemonProcess, run_cli, write_config
from tests.cardhelpers import CATALOG, authorisations, card_body, event_kinds

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
APPROVAL_WAIT_S = 20.0
RESOLVE_WAIT_S = 20.0


def _terminal(port: Path) -> str:
    return (f'[terminal]\nprotocol = "zvt"\nport = "{port}"\nkeepalive_s = 1\n'
            'response_timeout_s = 60\n')


def _pair(state: Path, url: str) -> str:
    code = run_cli("pair", "--state", str(state)).stdout.strip().splitlines()[-1]

    async def exchange() -> str:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(url + "api/v1/pair",
                                      json={"code": code, "name": "crash"})
            return str((await resp.json())["token"])

    return asyncio.run(exchange())


def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            resp = await session.request(method, url, json=body)
            return resp.status, await resp.json()

    return asyncio.run(go())


def _wait(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _intent_status(journal: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT status FROM payment_intents")]
    finally:
        conn.close()


def test_sigkill_after_approval_gives_exactly_one_approved_sale(
        tmp_path: Path) -> None:
    sim = ZvtTerminalSim(tmp_path / "ttyZVT")
    sim.start()
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state, _terminal(sim.link_path))
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    daemon = DaemonProcess(config)
    try:
        token = _pair(state, daemon.url)
        run_cli("import-catalog", str(catalog), "--state", str(state))
        sim.behaviour.silent_after = "status_info"  # approved, no completion
        status, sale = _call("POST", daemon.url + "api/v1/sales", token,
                             card_body("crash-card-0001"))
        assert status == 202, sale
        _wait(lambda: sim.last is not None and sim._silent.is_set(),
              APPROVAL_WAIT_S, "the terminal's approval")
        daemon.kill()
    finally:
        daemon.kill()
    journal = state / "journal.sqlite3"
    assert _intent_status(journal) == ["pending"]
    assert "sale.completed" not in event_kinds(journal)

    sim.wake()
    daemon = DaemonProcess(config)
    try:
        url = daemon.url + f"api/v1/sales/{sale['id']}"
        done = _wait(lambda: _approved(url, token), RESOLVE_WAIT_S,
                     "resolution by last transaction")
    finally:
        daemon.terminate()
        sim.stop()
    assert done["status"] == "completed"
    assert done["payment"]["resolved_by"] == "terminal (last-transaction enquiry)"
    kinds = event_kinds(journal)
    assert kinds.count("sale.completed") == 1
    assert kinds.count("payment.intent_created") == 1
    assert authorisations(sim) == 1
    assert run_cli("verify", "--state", str(state)).returncode == 0


def _approved(url: str, token: str) -> dict[str, Any] | None:
    status, sale = _call("GET", url, token)
    if status == 200 and sale["payment"]["status"] == "approved":
        return dict(sale)
    return None
