"""Golden receipts with fees, discounts, rounding, split tenders and carbon."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from daemon.sales.receipt import (
    PaymentRow,
    Receipt,
    ReceiptLine,
    TaxRow,
    layout,
    render_text,
)
from device.printer import escpos
from device.printer.settings import PrinterSettings

GOLDEN = Path(__file__).parent / "golden"
URL = "http://stall.local:8080/methodology"


def billing_receipt() -> Receipt:
    """A CHF receipt: line and sale discount, cup fee and deposit, own-cup credit,
    voucher + cash with rounding, and the carbon block."""
    return Receipt(
        header=("Café Élise", "Marktgasse 3, 3011 Bern", "CHE-123.456.789 MWST"),
        sale_id="5f2c9a1e0b7d4c33",
        seq=4711,
        time_local="04.05.2024 10:15",
        currency="CHF",
        lines=(
            ReceiptLine(2, "Kaffee to go", 420, 840, "B", 50),
            ReceiptLine(1, "Bärlauch-Pesto", 690, 690, "B"),
            ReceiptLine(2, "Becher fee", 20, 40, "A"),
            ReceiptLine(2, "Becher deposit", 100, 200, "D"),
            ReceiptLine(1, "Becher own container credit", -10, -10, "A"),
        ),
        taxes=(
            TaxRow("A", "8,1 %", 28, 2, 30),
            TaxRow("B", "2,6 %", 1326, 34, 1360),
            TaxRow("D", "exempt", 200, 0, 200),
        ),
        total_minor=1590,
        payments=(PaymentRow("Voucher ...0042", 1000), PaymentRow("Cash", 1000)),
        change_minor=410,
        footer=("Merci et à bientôt!",),
        sale_discount_minor=120,
        sale_discount_label="Stammkunde",
        rounding_minor=0,
        carbon=("Est. footprint 1,2 kg CO2e", "(range 850 g to 1,6 kg)",
                "Method stallbox-co2e 1.0",
                "Data: ADEME Agribalyse 3.1; US EPA Supply Chain GHG Emission "
                "Factors 1.2", "No offsets netted."),
        methodology_url=URL,
    )


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_golden_text(columns: int) -> None:
    text = render_text(billing_receipt(), columns, codepage="cp858")

    golden = GOLDEN / f"receipt_billing_{columns}.txt"
    if os.environ.get("STALLBOX_REGEN_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines()) <= columns


def test_rounding_is_its_own_signed_line() -> None:
    receipt = dataclasses.replace(billing_receipt(), rounding_minor=-2)
    text = render_text(receipt, 42)
    assert "Cash rounding" in text and "-0,02" in text
    up = render_text(dataclasses.replace(receipt, rounding_minor=2), 42)
    assert "+0,02" in up


def test_carbon_block_and_qr_for_an_absolute_url() -> None:
    lines = layout(billing_receipt(), 42)
    assert [line.qr for line in lines if line.qr] == [URL]
    relative = dataclasses.replace(billing_receipt(), methodology_url="/methodology")
    assert not any(line.qr for line in layout(relative, 42))
    text = render_text(billing_receipt(), 42)
    assert "No offsets netted." in text and "neutral" not in text.lower()


def test_golden_bytes_with_qr() -> None:
    settings = PrinterSettings(port="/dev/null", columns=42)
    data = escpos.encode_receipt(billing_receipt(), settings)

    golden = GOLDEN / "receipt_billing_cp858_qr.bin"
    if os.environ.get("STALLBOX_REGEN_GOLDEN"):
        golden.write_bytes(data)
    assert data == golden.read_bytes()
    store = b"\x1d(k" + (len(URL) + 3).to_bytes(2, "little") + b"1P0" + URL.encode()
    assert store in data  # GS ( k fn 180: the URL stored in the QR symbol


def test_the_simulated_printer_reads_past_the_qr_code() -> None:
    from device.sim.escpos_decoder import EscposDecoder, TextLine

    settings = PrinterSettings(port="/dev/null", columns=42)
    decoder = EscposDecoder()
    events = decoder.feed(escpos.encode_receipt(billing_receipt(), settings))
    texts = [e.text for e in [*events, *decoder.flush()] if isinstance(e, TextLine)]
    assert texts[-3:] == [URL, "-" * 42, "           Merci et à bientôt!"]
