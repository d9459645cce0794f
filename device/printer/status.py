"""Real-time status of an ESC/POS printer: DLE EOT requests and their answers.

Every bit meaning here is from the Epson ESC/POS Application Programming Guide,
command "DLE EOT n — Transmit real-time status". Each answer is one byte whose
bits 0, 1, 4 and 7 are fixed (0, 1, 1, 0): a byte that breaks that pattern was
not sent by a printer speaking our line settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

# Epson APG, DLE EOT: the request prefix; n follows.
DLE_EOT = b"\x10\x04"

# Epson APG, DLE EOT: the fixed bits of every status byte.
STATUS_FIXED_MASK = 0x93  # bits 7, 4, 1, 0
STATUS_FIXED_BITS = 0x12  # bit 4 = 1, bit 1 = 1, bits 7 and 0 = 0

# Epson APG, DLE EOT n=1 (printer status).
PRINTER_OFFLINE = 0x08  # bit 3
PRINTER_DRAWER_HIGH = 0x04  # bit 2, drawer kick-out connector pin 3
# Epson APG, DLE EOT n=2 (offline cause).
OFFLINE_COVER_OPEN = 0x04  # bit 2
OFFLINE_FEED_BUTTON = 0x08  # bit 3
OFFLINE_PAPER_END = 0x20  # bit 5, printing stopped by paper end
OFFLINE_ERROR = 0x40  # bit 6
# Epson APG, DLE EOT n=3 (error cause).
ERROR_AUTOCUTTER = 0x08  # bit 3
ERROR_UNRECOVERABLE = 0x20  # bit 5
ERROR_AUTO_RECOVERABLE = 0x40  # bit 6
# Epson APG, DLE EOT n=4 (roll paper sensor).
PAPER_NEAR_END = 0x0C  # bits 2 and 3
PAPER_END = 0x60  # bits 5 and 6

# Answers that break the fixed bits before the link is called misconfigured.
GARBLED_ANSWERS_FOR_MISCONFIGURED = 2


class StatusKind(IntEnum):
    """The n of DLE EOT n: which status byte is asked for."""

    PRINTER = 1
    OFFLINE_CAUSE = 2
    ERROR = 3
    PAPER = 4


ALL_KINDS = tuple(StatusKind)


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the printer said about itself; None where it did not say."""

    online: bool | None = None
    cover_open: bool | None = None
    paper_end: bool | None = None
    paper_near_end: bool | None = None
    error: bool | None = None
    recoverable_error: bool | None = None
    garbled: int = 0
    missing: int = 0

    @property
    def answered(self) -> bool:
        """Return True when at least one well-formed status byte came back."""
        return self.garbled + self.missing < len(ALL_KINDS)


def request(kind: StatusKind | int) -> bytes:
    """Return the DLE EOT request for one status byte."""
    return DLE_EOT + bytes([int(kind)])


def is_status_byte(value: int) -> bool:
    """Return True when the byte has the fixed bits every status byte has."""
    return value & STATUS_FIXED_MASK == STATUS_FIXED_BITS


def _flag(byte: int | None, mask: int, *, all_bits: bool = False) -> bool | None:
    if byte is None:
        return None
    return byte & mask == mask if all_bits else bool(byte & mask)


def parse(answers: Mapping[int, bytes]) -> PrinterStatus:
    """Parse the answers to DLE EOT 1..4; absent or garbled answers say nothing."""
    good: dict[int, int] = {}
    garbled = missing = 0
    for kind in ALL_KINDS:
        answer = answers.get(kind, b"")
        if not answer:
            missing += 1
        elif len(answer) == 1 and is_status_byte(answer[0]):
            good[kind] = answer[0]
        else:
            garbled += 1
    printer, cause = good.get(StatusKind.PRINTER), good.get(StatusKind.OFFLINE_CAUSE)
    error, paper = good.get(StatusKind.ERROR), good.get(StatusKind.PAPER)
    offline = _flag(printer, PRINTER_OFFLINE)
    return PrinterStatus(
        online=None if offline is None else not offline,
        cover_open=_flag(cause, OFFLINE_COVER_OPEN),
        paper_end=_any(
            _flag(cause, OFFLINE_PAPER_END), _flag(paper, PAPER_END, all_bits=True)
        ),
        paper_near_end=_flag(paper, PAPER_NEAR_END, all_bits=True),
        error=_any(_flag(cause, OFFLINE_ERROR), _flag(error, ERROR_UNRECOVERABLE)),
        recoverable_error=_flag(error, ERROR_AUTO_RECOVERABLE | ERROR_AUTOCUTTER),
        garbled=garbled,
        missing=missing,
    )


def _any(*flags: bool | None) -> bool | None:
    known = [flag for flag in flags if flag is not None]
    return any(known) if known else None


def looks_misconfigured(status: PrinterStatus) -> bool:
    """Return True when the answers look like a wrong baud rate or parity.

    One garbled byte among good ones is line noise and only advice; several
    garbled bytes and no good one mean the bytes we send arrive garbled too.
    """
    return status.garbled >= GARBLED_ANSWERS_FOR_MISCONFIGURED and not _good_count(
        status
    )


def _good_count(status: PrinterStatus) -> int:
    return len(ALL_KINDS) - status.garbled - status.missing


def encode_answer(kind: StatusKind | int, status: PrinterStatus) -> bytes:
    """Return the status byte a printer in this state sends for DLE EOT n."""
    value = STATUS_FIXED_BITS
    if kind == StatusKind.PRINTER and status.online is False:
        value |= PRINTER_OFFLINE
    elif kind == StatusKind.OFFLINE_CAUSE:
        value |= OFFLINE_COVER_OPEN if status.cover_open else 0
        value |= OFFLINE_PAPER_END if status.paper_end else 0
        value |= OFFLINE_ERROR if status.error else 0
    elif kind == StatusKind.ERROR:
        value |= ERROR_UNRECOVERABLE if status.error else 0
    elif kind == StatusKind.PAPER:
        value |= PAPER_END if status.paper_end else 0
        value |= PAPER_NEAR_END if status.paper_near_end or status.paper_end else 0
    return bytes([value])
