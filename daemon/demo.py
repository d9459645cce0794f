"""`stallbox demo`: the daemon on embedded defaults with a simulated printer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from daemon.config import Config, parse_config
from daemon.runtime import Stallbox
from daemon.server import serve
from device.sim.printer import SimulatedPrinter
from device.sim.zvt_terminal import ZvtTerminalSim

_LOG = logging.getLogger(__name__)
PRINTER_LINK = "printer-port"  # stands where /dev/serial/by-id/... would
TERMINAL_LINK = "terminal-port"  # the simulated ZVT card terminal's pty
RECEIPTS_FILE = "printed-receipts.txt"
RECEIPT_POLL_S = 0.5


def demo_config(state: Path, host: str, port: int, printer_port: str,
                terminal_port: str | None = None) -> Config:
    """Return the demo's configuration: a German craft-and-food stall."""
    return parse_config({
        "stall": {"name": "Kräuter & Kerzen (Demo)", "currency": "EUR",
                  "address": "Marktplatz 1, 79098 Freiburg",
                  "vat_id": "DE000000000", "id": "demo-stall"},
        "http": {"host": host, "port": port},
        "state": {"dir": str(state)},
        "printer": {"port": printer_port, "baudrate": 115200, "codepage": "cp858",
                    "columns": 42, "cut": "gs_v"},
        "terminal": {"protocol": "zvt", "port": terminal_port} if terminal_port
        else {"protocol": "none"},
    }, base_dir=state)


async def _announce(box: Stallbox, url: str) -> None:
    if not await box.products("", "", 1):
        data = resources.files("daemon.catalog").joinpath("demo.csv").read_bytes()
        outcome = await box.import_catalog(data, skip_invalid=False)
        _LOG.info("demo catalog imported: %d products", outcome.imported)
    code = await box.issue_pairing_code()
    minutes = box.config.pairing_code_ttl_s // 60
    print(f"Stallbox demo is running at {url}", flush=True)
    print(f"Pairing code: {code} (valid {minutes} minutes)", flush=True)
    print("New code: stallbox pair --state " + str(box.config.state_dir), flush=True)
    await _manager_pin(box)


async def _manager_pin(box: Stallbox) -> None:
    """Give a fresh demo a manager PIN (refunds, shift close) and show it once."""
    if box.lan.pin is not None:
        print("Manager PIN: the one shown at the first start (new one: "
              f"stallbox manager-pin --state {box.config.state_dir})", flush=True)
        return
    pin = f"{secrets.randbelow(10**6):06d}"
    await box.lan.set_pin(pin, by="demo")
    # The demo's console is its operator's screen, not a log: the PIN is
    # printed here once and stored only as a salted scrypt hash.
    print(f"Manager PIN: {pin} (for refunds and closing the shift)", flush=True)


@contextlib.asynccontextmanager
async def _printer(state: Path) -> AsyncIterator[SimulatedPrinter]:
    printer = SimulatedPrinter(baudrate=115200, link_path=state / PRINTER_LINK)
    printer.start()
    copier = asyncio.create_task(_copy_receipts(printer, state / RECEIPTS_FILE))
    try:
        yield printer
    finally:
        copier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await copier
        printer.stop()


async def _copy_receipts(printer: SimulatedPrinter, path: Path) -> None:
    """Append each receipt the simulated printer printed to a text file."""
    done = len(printer.receipts)
    while True:
        await asyncio.sleep(RECEIPT_POLL_S)
        new = printer.receipts[done:]
        if new:
            done += len(new)
            text = "".join(receipt + "-" * 42 + " (cut)\n" for receipt in new)
            await asyncio.to_thread(_append, path, text)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def _prepare_state(state: Path) -> Path:
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    return state


async def run_demo(state: Path, host: str, port: int) -> None:
    """Run the demo until SIGTERM or Ctrl-C."""
    state = await asyncio.to_thread(_prepare_state, state)
    terminal = ZvtTerminalSim(state / TERMINAL_LINK)
    terminal.start()  # card amounts ending in ,13 / ,51 / ,66 are refused
    try:
        async with _printer(state) as printer:
            config = demo_config(state, host, port, printer.port_path,
                                 str(terminal.link_path))
            await serve(config, on_ready=_announce)
    finally:
        await asyncio.to_thread(terminal.stop)
