"""ESC/POS encoding: exact golden bytes, code pages, cut modes, stand-ins."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest

from daemon.sales.receipt import ReceiptLine
from device.printer import escpos
from device.printer.settings import PrinterSettings
from tests.receipt_samples import market_receipt

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = PrinterSettings(port="/dev/null")


def test_golden_bytes_cp858() -> None:
    data = escpos.encode_receipt(market_receipt(), SETTINGS)

    golden = GOLDEN / "receipt_cp858_gs_v.bin"
    if os.environ.get("STALLBOX_REGEN_GOLDEN"):
        golden.write_bytes(data)
    assert data == golden.read_bytes()


def test_init_and_code_page_come_first() -> None:
    data = escpos.encode_receipt(market_receipt(), SETTINGS)

    assert data.startswith(b"\x1b@" + b"\x1bt\x13")


def test_euro_and_accents_are_single_bytes_in_cp858() -> None:
    data = escpos.encode_receipt(market_receipt(), SETTINGS)

    assert b"in \xd5 inkl" in data  # € is 0xD5 in CP858
    assert b"Cr\x8ame br\x96l\x82e" in data  # è, û, é
    assert "€".encode() not in data and "é".encode() not in data


@pytest.mark.parametrize(
    ("codepage", "number"),
    [("cp437", 0), ("cp850", 2), ("cp852", 18), ("cp858", 19), ("CP-1252", 16),
     ("cp866", 17)],
)
def test_esc_t_numbers(codepage: str, number: int) -> None:
    settings = dataclasses.replace(SETTINGS, codepage=codepage)

    data = escpos.encode_receipt(market_receipt(), settings)
    assert data[2:5] == b"\x1bt" + bytes([number])


def test_euro_in_cp1252_is_0x80() -> None:
    settings = dataclasses.replace(SETTINGS, codepage="cp1252")

    assert b"in \x80 inkl" in escpos.encode_receipt(market_receipt(), settings)


@pytest.mark.parametrize(
    ("cut", "tail"),
    [
        ("gs_v", b"\x1dVB\x00"),
        ("esc_i", b"\x1bd\x04\x1bi"),
        ("esc_m", b"\x1bd\x04\x1bm"),
        ("none", b"\n\x1bd\x06"),
    ],
)
def test_cut_modes(cut: str, tail: bytes) -> None:
    settings = dataclasses.replace(SETTINGS, cut=cut)

    assert escpos.encode_receipt(market_receipt(), settings).endswith(tail)


def test_missing_character_gets_a_stand_in_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = ReceiptLine(1, "Łódź 日本 “tea”", 100, 100, "A")
    receipt = dataclasses.replace(market_receipt(), lines=(line,))

    with caplog.at_level(logging.INFO, logger=escpos.__name__):
        data = escpos.encode_receipt(receipt, SETTINGS)
    assert b'L\xa2dz ?? "tea"' in data
    records = [r for r in caplog.records if r.name == escpos.__name__]
    assert len(records) == 1 and "U+65E5" in records[0].getMessage()


def test_receipt_in_cyrillic_page_never_sends_utf8() -> None:
    settings = dataclasses.replace(SETTINGS, codepage="cp866")

    data = escpos.encode_receipt(market_receipt(), settings)
    assert b"Creme brulee" in data  # accents dropped, letters kept
    assert b"\xc3" not in data  # no UTF-8 lead byte of Latin-1 letters


def test_encode_text_cleans_control_characters() -> None:
    assert escpos.encode_text("a\x1bb\x00c", "cp858") == b"a?b?c"


@pytest.mark.parametrize(
    "settings",
    [dataclasses.replace(SETTINGS, codepage="utf-8"),
     dataclasses.replace(SETTINGS, cut="guillotine")],
)
def test_unknown_settings_are_refused(settings: PrinterSettings) -> None:
    with pytest.raises(escpos.EncodeError):
        escpos.encode_receipt(market_receipt(), settings)
