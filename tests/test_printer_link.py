"""PrinterLink against the simulated printer on a real pty."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.sales.receipt import render_text
from device.printer.escpos import encode_receipt
from device.printer.link import (
    PrinterLink,
    PrinterUnavailable,
    PrintInterrupted,
    StateCode,
)
from device.printer.settings import PrinterSettings
from device.sim.printer import SimulatedPrinter
from tests.receipt_samples import market_receipt


def _settings(port: str, **changes: Any) -> PrinterSettings:
    """Printer settings with timeouts shrunk for tests."""
    fast = PrinterSettings(port=port, write_timeout_s=0.3, status_timeout_s=0.1)
    return dataclasses.replace(fast, **changes)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(link_path=tmp_path / "printer") as printer:
        yield printer


@pytest.fixture
async def link(sim: SimulatedPrinter) -> AsyncIterator[PrinterLink]:
    settings = _settings(sim.port_path)
    printer_link = PrinterLink(settings)
    yield printer_link
    await printer_link.close()


async def test_ready_printer_prints(sim: SimulatedPrinter, link: PrinterLink) -> None:
    assert (await link.query_status()).code == StateCode.READY

    await link.send(encode_receipt(market_receipt(), link.settings))
    printed = await asyncio.to_thread(sim.wait_for_receipts, 1)
    assert printed == [render_text(market_receipt(), 42, codepage="cp858")]


@pytest.mark.parametrize(
    ("switch", "code", "words"),
    [
        ("set_paper_out", StateCode.PAPER_OUT, "paper roll"),
        ("set_cover_open", StateCode.COVER_OPEN, "close the printer cover"),
    ],
)
async def test_paper_and_cover(
    sim: SimulatedPrinter, link: PrinterLink, switch: str, code: StateCode, words: str
) -> None:
    getattr(sim, switch)(True)

    state = await link.query_status()
    assert state.code == code and words in state.action and not state.printable


async def test_offline(sim: SimulatedPrinter, link: PrinterLink) -> None:
    sim.set_online(False)

    state = await link.query_status()
    assert state.code == StateCode.OFFLINE and "online button" in state.action


async def test_absent_port(tmp_path: Path) -> None:
    link = PrinterLink(_settings(str(tmp_path / "nothing")))
    try:
        state = await link.query_status()
        assert state.code == StateCode.ABSENT and "cable" in state.action
        with pytest.raises(PrinterUnavailable):
            await link.send(b"x")
    finally:
        await link.close()


async def test_unplug_then_replug_recovers_and_logs_once(
    sim: SimulatedPrinter, link: PrinterLink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="device.printer.link")
    assert (await link.query_status()).code == StateCode.READY
    sim.unplug()

    for _ in range(3):
        assert (await link.query_status()).code == StateCode.ABSENT
    sim.replug()
    assert (await link.query_status()).code == StateCode.READY

    levels = [r.levelname for r in caplog.records if r.name == "device.printer.link"]
    assert levels.count("WARNING") == 1 and levels.count("INFO") == 1
    assert "DEBUG" in levels


async def test_stalled_write_is_interrupted(
    sim: SimulatedPrinter, link: PrinterLink
) -> None:
    sim.set_stalled(True)

    with pytest.raises(PrintInterrupted):
        await link.send(b"x" * 256 * 1024)
    assert link.state.code == StateCode.STALLED
    assert "paper jam" in link.state.action


async def test_stalled_xonxoff_printer_is_not_printable(sim: SimulatedPrinter) -> None:
    settings = _settings(sim.port_path, flow_control="xonxoff")
    link = PrinterLink(settings)
    try:
        assert (await link.query_status()).code == StateCode.READY
        sim.set_stalled(True)
        assert (await link.query_status()).code == StateCode.STALLED
        sim.set_stalled(False)
        assert (await link.query_status()).code == StateCode.READY
    finally:
        await link.close()


async def test_wrong_baud_rate_is_misconfigured(tmp_path: Path) -> None:
    with SimulatedPrinter(baudrate=19200, link_path=tmp_path / "p") as sim:
        link = PrinterLink(_settings(sim.port_path, baudrate=9600))
        try:
            state = await link.query_status()
        finally:
            await link.close()
    assert state.code == StateCode.MISCONFIGURED
    assert state.reason == "link misconfigured (check baud rate / parity)"
    assert not state.printable


async def test_matching_baud_rate_is_ready(tmp_path: Path) -> None:
    with SimulatedPrinter(baudrate=19200, link_path=tmp_path / "p") as sim:
        link = PrinterLink(_settings(sim.port_path, baudrate=19200))
        try:
            assert (await link.query_status()).code == StateCode.READY
        finally:
            await link.close()


async def test_silent_printer_is_unknown_but_printable(
    sim: SimulatedPrinter, link: PrinterLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim, "_answer", lambda *args: None)

    state = await link.query_status()
    assert state.code == StateCode.UNKNOWN and state.printable


async def test_the_loop_is_never_blocked(sim: SimulatedPrinter, tmp_path: Path) -> None:
    sim.paced = True  # 9600 baud: the receipt takes most of a second
    settings = _settings(sim.port_path)
    link = PrinterLink(dataclasses.replace(settings, write_timeout_s=5.0))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        await link.query_status()
        await link.send(encode_receipt(market_receipt(), settings))
        await asyncio.to_thread(sim.wait_for_receipts, 1)
    finally:
        task.cancel()
        await link.close()
    assert len(gaps) > 20 and max(gaps) < 0.1
