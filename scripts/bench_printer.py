"""Printer line-rate benchmark (#9): receipt bytes/s as a share of the line rate.

Run through ``scripts/bench.py printer``. The daemon's PrinterLink writes
ESC/POS receipts into the simulated printer on a real pseudo-terminal, paced
like the real line (a byte every 10 bit times at 8N1). The figure is the rate
at which receipt bytes arrive at the printer, next to what the line can carry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from daemon.sales.receipt import PaymentRow, Receipt, ReceiptLine, TaxRow
from device.printer.escpos import encode_receipt
from device.printer.link import PrinterLink
from device.printer.settings import PrinterSettings
from device.sim.printer import BITS_PER_BYTE, SimulatedPrinter

# (baud, receipts in quick mode, receipts in full mode): about 1.4 s and 11 s each.
RUNS = ((9600, 1, 8), (115200, 10, 100))
ARRIVAL_TIMEOUT_S = 120.0


def bench_receipt() -> Receipt:
    """Return a twelve-line, two-rate cash receipt of a busy market stall."""
    items = [ReceiptLine(1 + i % 3, f"Kräuterseife Nr. {i}", 590, 590 * (1 + i % 3),
                         "A" if i % 2 else "B") for i in range(12)]
    return Receipt(
        header=("Kräuter & Kerzen", "Marktplatz 1, 79098 Freiburg"),
        sale_id="S-BENCH", seq=42, time_local="2024-05-04 10:15", currency="EUR",
        lines=tuple(items),
        taxes=(TaxRow("A", "19%", 6941, 1319, 8260),
               TaxRow("B", "7%", 7720, 540, 8260)),
        total_minor=16520, payments=(PaymentRow("Cash", 20000),),
        change_minor=3480, footer=("Danke für Ihren Einkauf!",), reprint=False)


async def _send_all(sim: SimulatedPrinter, job: bytes, count: int,
                    settings: PrinterSettings) -> float:
    """Send count jobs through a PrinterLink; return seconds until all arrived."""
    link = PrinterLink(settings)
    try:
        await link.ensure_open()
        start = time.perf_counter()
        for _ in range(count):
            await link.send(job)
        await asyncio.to_thread(sim.wait_for_receipts, count, ARRIVAL_TIMEOUT_S)
        return time.perf_counter() - start
    finally:
        await link.close()


def measure(baud: int, count: int) -> tuple[float, int]:
    """Return (bytes/s reaching the paced simulator, bytes per receipt)."""
    with SimulatedPrinter(baudrate=baud, paced=True) as sim:
        settings = PrinterSettings(port=sim.port_path, baudrate=baud)
        settings = replace(settings, write_timeout_s=30.0)
        job = encode_receipt(bench_receipt(), settings)
        elapsed_s = asyncio.run(_send_all(sim, job, count, settings))
        if sim.bytes_received != len(job) * count:
            raise RuntimeError(f"{sim.bytes_received} of {len(job) * count} bytes")
    return len(job) * count / elapsed_s, len(job)


def run(quick: bool, figure: Any) -> list[Any]:
    """Measure both line speeds; return the figures."""
    figures = []
    for baud, quick_count, full_count in RUNS:
        count = quick_count if quick else full_count
        rate, size = measure(baud, count)
        line_rate = baud / BITS_PER_BYTE
        figures.append(figure(
            f"receipt bytes/s to the printer, {baud} baud ({count}×{size} B)",
            rate, "B/s", "line rate at 8N1", line_rate, "≥ 0.95×"))
    return figures
