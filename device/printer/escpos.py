"""Encode a receipt as ESC/POS bytes; pure, no I/O.

Commands come from python-escpos's Dummy printer where it has them. Text is
encoded here, to the configured code page, because python-escpos's automatic
encoder switches code pages on its own and may send bytes our layout did not
plan for. Command names and numbers cite the Epson ESC/POS Application
Programming Guide (APG).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from daemon.sales.receipt import LayoutLine, Receipt, layout, printable
from device.printer.settings import PrinterSettings

if TYPE_CHECKING:
    from escpos.printer import Dummy

_LOGGER = logging.getLogger(__name__)

# Epson APG, "ESC t n — Select character code table": n for each table.
ESC_T_PC437 = 0  # USA, Standard Europe
ESC_T_PC850 = 2  # Multilingual
ESC_T_PC860 = 3  # Portuguese
ESC_T_PC863 = 4  # Canadian-French
ESC_T_PC865 = 5  # Nordic
ESC_T_PC737 = 14  # Greek
ESC_T_WPC1252 = 16  # Windows Latin 1
ESC_T_PC866 = 17  # Cyrillic #2
ESC_T_PC852 = 18  # Latin 2
ESC_T_PC858 = 19  # Euro
ESC_T_ISO8859_15 = 40  # Latin 9

# Our code page names (Python codec names) and their ESC t numbers.
CODEPAGES: dict[str, int] = {
    "cp437": ESC_T_PC437,
    "cp850": ESC_T_PC850,
    "cp860": ESC_T_PC860,
    "cp863": ESC_T_PC863,
    "cp865": ESC_T_PC865,
    "cp737": ESC_T_PC737,
    "cp1252": ESC_T_WPC1252,
    "cp866": ESC_T_PC866,
    "cp852": ESC_T_PC852,
    "cp858": ESC_T_PC858,
    "iso8859_15": ESC_T_ISO8859_15,
}
DEFAULT_CODEPAGE = "cp858"

# Epson APG, "ESC t n": the select command itself; n follows.
ESC_T = b"\x1bt"
# Epson APG, "ESC i — Partial cut (one point left uncut)".
ESC_I_PARTIAL_CUT_ONE_POINT = b"\x1bi"
# Epson APG, "ESC m — Partial cut (three points left uncut)".
ESC_M_PARTIAL_CUT_THREE_POINTS = b"\x1bm"
# Epson APG, "LF — Print and line feed".
LF = b"\n"

# Lines fed before ESC i / ESC m, which cut where the paper is.
FEED_BEFORE_CUT_LINES = 4
# Lines fed when there is no cutter, so the receipt can be torn off.
FEED_TEAR_OFF_LINES = 6
# QR module size in dots (GS ( k fn 167): 4 keeps a 60-character URL near 2 cm.
QR_MODULE_DOTS = 4


class EncodeError(ValueError):
    """Raised when the printer settings name a code page or cut we do not know."""


def codepage_number(codepage: str) -> int:
    """Return the ESC t n for a code page name such as 'cp858'."""
    key = codepage.lower().replace("-", "").replace("_", "")
    for name, number in CODEPAGES.items():
        if name.replace("_", "") == key:
            return number
    raise EncodeError(f"unsupported printer code page: {codepage!r}")


def codec_name(codepage: str) -> str:
    """Return the Python codec name for a supported code page name."""
    number = codepage_number(codepage)
    return next(name for name, n in CODEPAGES.items() if n == number)


def encode_text(text: str, codepage: str) -> bytes:
    """Encode text to the code page; a missing character gets a stand-in and a log."""
    codec = codec_name(codepage)
    fitted, replaced = printable(text, codec)
    _log_replaced(replaced, codec)
    return fitted.encode(codec)


def _log_replaced(replaced: tuple[str, ...], codec: str) -> None:
    if replaced:
        points = " ".join(sorted({f"U+{ord(c):04X}" for c in replaced}))
        _LOGGER.info(
            "%d characters not in %s printed as stand-ins: %s",
            len(replaced), codec, points,
        )


@functools.cache
def dummy_class() -> type[Dummy]:
    """Import python-escpos on first use and return its Dummy printer class.

    The import pulls in qrcode, python-barcode, Pillow and PyYAML (about a
    tenth of start-up on a Pi), which a daemon without a printer never needs,
    so it waits until the first receipt. Callers on the event loop run this in
    a thread first (``load_in_thread``) so the loop does not wait for it.
    """
    # isort: off
    from device.printer import escpos_cache  # noqa: F401  (must precede escpos)
    from escpos.printer import Dummy
    # isort: on

    return Dummy


async def load_in_thread() -> None:
    """Import python-escpos off the event loop, once; later calls return at once."""
    if dummy_class.cache_info().currsize == 0:
        await asyncio.to_thread(dummy_class)


def encode_receipt(receipt: Receipt, settings: PrinterSettings) -> bytes:
    """Return the ESC/POS bytes that print the receipt and cut it."""
    lines = layout(receipt, settings.columns, codepage=codec_name(settings.codepage))
    return encode_lines(lines, settings)


def encode_lines(lines: Sequence[LayoutLine], settings: PrinterSettings) -> bytes:
    """Return the ESC/POS bytes for laid-out lines (QR codes included), then cut."""
    codec = codec_name(settings.codepage)
    if settings.cut not in ("gs_v", "esc_m", "esc_i", "none"):
        raise EncodeError(f"unsupported cut mode: {settings.cut!r}")
    _log_replaced(tuple(c for line in lines for c in line.replaced), codec)
    printer = dummy_class()()
    printer.hw("INIT")
    printer._raw(ESC_T + bytes([CODEPAGES[codec]]))
    for line in lines:
        _line(printer, line, codec)
    _cut(printer, settings.cut)
    return bytes(printer.output)


def _line(printer: Dummy, line: LayoutLine, codec: str) -> None:
    styled = line.bold or line.double_height
    if styled:
        printer.set(bold=line.bold, double_height=line.double_height)
    printer._raw(line.text.encode(codec) + LF)
    if styled:
        printer.set(bold=False, normal_textsize=True)
    if line.qr:
        # Epson APG, "GS ( k" QR Code functions 165/167/169/180/181: the printer
        # draws the code itself, a few dozen bytes instead of a raster image.
        printer.qr(line.qr, native=True, size=QR_MODULE_DOTS)


def _cut(printer: Dummy, cut: str) -> None:
    if cut == "gs_v":
        # Epson APG, "GS V 66 n": feeds to the cutting position itself, then cuts.
        printer.cut(mode="PART", feed=False)
    elif cut == "esc_i":
        printer.print_and_feed(FEED_BEFORE_CUT_LINES)
        printer._raw(ESC_I_PARTIAL_CUT_ONE_POINT)
    elif cut == "esc_m":
        printer.print_and_feed(FEED_BEFORE_CUT_LINES)
        printer._raw(ESC_M_PARTIAL_CUT_THREE_POINTS)
    else:
        printer.print_and_feed(FEED_TEAR_OFF_LINES)
