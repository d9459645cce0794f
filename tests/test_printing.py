"""Printing through the daemon: a printer fault never fails a sale; exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.web.app import create_app
from device.printer import worker as worker_module
from device.sim.printer import SimulatedPrinter
from tests.conftest import auth, make_config, pair
from tests.test_api import stock

WAIT_S = 10.0


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(worker_module, "BACKOFF_MAX_S", 0.2)


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "by-id-printer") as sim:
        yield sim


@pytest.fixture
async def shop(aiohttp_client: Any, state_dir: Path,
               printer: SimulatedPrinter) -> tuple[TestClient, str]:
    config = make_config(state_dir, printer={"port": printer.port_path,
                                             "baudrate": 115200})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    return client, token


async def sell(client: TestClient, token: str) -> dict[str, Any]:
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": "CREME", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}}
    resp = await client.post("/api/v1/sales", headers=auth(token), json=body)
    assert resp.status == 201
    return await resp.json()


async def wait_for(predicate: Any, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def job_states(client: TestClient, token: str, sale_id: str) -> list[str]:
    sale = await (await client.get(f"/api/v1/sales/{sale_id}",
                                   headers=auth(token))).json()
    return [job["status"] for job in sale["print_jobs"]]


async def wait_states(client: TestClient, token: str, sale_id: str,
                      states: list[str]) -> None:
    """The printer holds the bytes a moment before the daemon reads its
    status reply and marks the job, so poll the job rather than the paper."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while await job_states(client, token, sale_id) != states:
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_sale_prints_its_receipt_once(shop: tuple[TestClient, str],
                                            printer: SimulatedPrinter) -> None:
    client, token = shop
    sale = await sell(client, token)
    await wait_for(lambda: len(printer.receipts) == 1)
    assert "Crème brûlée" in printer.receipts[0]
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert text.strip() == printer.receipts[0].strip()
    await asyncio.sleep(0.5)
    assert len(printer.receipts) == 1
    assert await job_states(client, token, sale["id"]) == ["printed"]


@pytest.mark.parametrize("fault", ["offline", "paper_out", "cover_open"])
async def test_printer_fault_keeps_selling_and_prints_later(
        shop: tuple[TestClient, str], printer: SimulatedPrinter, fault: str) -> None:
    client, token = shop
    setter = {"offline": lambda on: printer.set_online(not on),
              "paper_out": printer.set_paper_out,
              "cover_open": printer.set_cover_open}[fault]
    setter(True)
    sales = [await sell(client, token) for _ in range(3)]
    health = await (await client.get("/healthz")).json()
    await wait_for(lambda: client.app is not None and printer.status_requests > 0)
    await asyncio.sleep(0.3)
    health = await (await client.get("/healthz")).json()
    assert health["printer"]["state"] == fault
    assert health["printer"]["action"]
    assert printer.receipts == []
    setter(False)
    await wait_for(lambda: len(printer.receipts) == 3)
    await asyncio.sleep(0.5)
    assert len(printer.receipts) == 3
    for sale in sales:
        assert await job_states(client, token, sale["id"]) == ["printed"]


async def test_unplugged_printer_prints_once_it_is_back(
        shop: tuple[TestClient, str], printer: SimulatedPrinter) -> None:
    client, token = shop
    printer.unplug()
    sale = await sell(client, token)
    await asyncio.sleep(0.5)
    health = await (await client.get("/healthz")).json()
    assert health["printer"]["state"] == "absent"
    printer.replug()
    await wait_for(lambda: len(printer.receipts) == 1)
    await wait_states(client, token, sale["id"], ["printed"])


async def test_reprint_is_explicit_and_marked(shop: tuple[TestClient, str],
                                              printer: SimulatedPrinter) -> None:
    client, token = shop
    sale = await sell(client, token)
    await wait_for(lambda: len(printer.receipts) == 1)
    resp = await client.post(f"/api/v1/sales/{sale['id']}/reprint",
                             headers=auth(token))
    assert resp.status == 202
    await wait_for(lambda: len(printer.receipts) == 2)
    assert "REPRINT" not in printer.receipts[0]
    assert "REPRINT" in printer.receipts[1]


async def test_wrong_baud_rate_is_reported_not_printed(
        shop: tuple[TestClient, str], printer: SimulatedPrinter) -> None:
    client, token = shop
    printer.set_garbled(True)
    await sell(client, token)
    await asyncio.sleep(1.0)
    health = await (await client.get("/healthz")).json()
    reason = health["printer"]["reason"]
    assert reason == "link misconfigured (check baud rate / parity)"
    assert printer.receipts == []


async def test_configured_baud_differs_from_printer(aiohttp_client: Any,
                                                    state_dir: Path,
                                                    tmp_path: Path) -> None:
    with SimulatedPrinter(baudrate=9600, link_path=tmp_path / "slow") as slow:
        config = make_config(state_dir, printer={"port": slow.port_path,
                                                 "baudrate": 115200})
        client = await aiohttp_client(create_app(config))
        token = await pair(client)
        await stock(client, token)
        await sell(client, token)
        await asyncio.sleep(1.0)
        health = await (await client.get("/healthz")).json()
        assert health["printer"]["state"] == "misconfigured"
        assert slow.receipts == []
