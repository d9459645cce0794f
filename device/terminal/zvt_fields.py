"""ZVT data fields: BCD numbers, BMP fields and the TLV container (BMP 06).

Formats follow the bitmap table of the ZVT ECR interface (PA00P015, chapter
"Bitmaps"): fixed-length fields, LLVAR/LLLVAR fields whose length is written as
``Fx Fy (Fz)`` digits, and BMP 06 carrying BER-style TLV data. Pure code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger(__name__)


class ZvtParseError(ValueError):
    """Raised when bytes are not a well-formed ZVT APDU, field or message."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} at {offset}")
        self.offset = offset


class Fmt(Enum):
    """How a BMP's length is known."""

    FIXED = "fixed"
    LLVAR = "llvar"
    LLLVAR = "lllvar"
    TLV = "tlv"


# PA00P015 bitmap table: tag -> (format, fixed length). Tags not listed here
# cannot be skipped safely (their length is unknown), so they are rejected.
BMP_FORMATS: dict[int, tuple[Fmt, int]] = {
    0x01: (Fmt.FIXED, 1),  # timeout
    0x02: (Fmt.FIXED, 1),  # max. status infos
    0x03: (Fmt.FIXED, 1),  # service byte
    0x04: (Fmt.FIXED, 6),  # amount, BCD minor units
    0x05: (Fmt.FIXED, 1),  # pump number
    0x06: (Fmt.TLV, 0),  # TLV container
    0x0B: (Fmt.FIXED, 3),  # trace number, BCD
    0x0C: (Fmt.FIXED, 3),  # time HHMMSS, BCD
    0x0D: (Fmt.FIXED, 2),  # date MMDD, BCD
    0x0E: (Fmt.FIXED, 2),  # expiry YYMM, BCD
    0x17: (Fmt.FIXED, 2),  # card sequence number
    0x19: (Fmt.FIXED, 1),  # payment type / status byte
    0x22: (Fmt.LLVAR, 0),  # PAN or EF_ID, BCD, E = masked digit
    0x23: (Fmt.LLVAR, 0),  # track 2
    0x24: (Fmt.LLLVAR, 0),  # track 3
    0x27: (Fmt.FIXED, 1),  # result code
    0x29: (Fmt.FIXED, 4),  # terminal id, BCD
    0x2A: (Fmt.FIXED, 15),  # VU number (merchant id), ASCII
    0x2D: (Fmt.LLVAR, 0),  # track 1
    0x2E: (Fmt.LLLVAR, 0),  # synchronous chip data
    0x37: (Fmt.FIXED, 3),  # trace number of the original transaction
    0x3A: (Fmt.FIXED, 2),  # CVV/CVC
    0x3B: (Fmt.FIXED, 8),  # authorisation attribute (approval code)
    0x3C: (Fmt.LLLVAR, 0),  # additional data / text
    0x3D: (Fmt.FIXED, 3),  # password
    0x49: (Fmt.FIXED, 2),  # currency code, BCD
    0x60: (Fmt.LLLVAR, 0),  # individual totals
    0x87: (Fmt.FIXED, 2),  # receipt number, BCD
    0x88: (Fmt.FIXED, 3),  # turnover record number, BCD
    0x8A: (Fmt.FIXED, 1),  # card type
    0x8B: (Fmt.LLVAR, 0),  # card name, ASCII, NUL-terminated
    0x8C: (Fmt.FIXED, 1),  # card type id of the network operator
    0x92: (Fmt.LLLVAR, 0),  # additional data ec-Cash
    0x9A: (Fmt.LLLVAR, 0),  # Geldkarte payment record
    0xA0: (Fmt.FIXED, 1),  # result code AS
    0xA7: (Fmt.LLVAR, 0),  # chip data
    0xAF: (Fmt.LLLVAR, 0),  # EF_Info
    0xBA: (Fmt.FIXED, 5),  # AID parameter
    0xD0: (Fmt.FIXED, 1),  # algorithm key
    0xD1: (Fmt.LLVAR, 0),  # card offset/PIN data
    0xD2: (Fmt.FIXED, 1),  # direction
    0xD3: (Fmt.FIXED, 1),  # key position
    0xE0: (Fmt.FIXED, 1),  # min. input length
    **{tag: (Fmt.LLVAR, 0) for tag in range(0xE1, 0xE9)},  # text2 lines
    0xE9: (Fmt.FIXED, 1),  # max. input length
    0xEA: (Fmt.FIXED, 1),  # echo input
    0xEB: (Fmt.FIXED, 8),  # MAC
    0xF0: (Fmt.FIXED, 1),  # display duration
    **{tag: (Fmt.LLVAR, 0) for tag in range(0xF1, 0xF9)},  # display lines
    0xF9: (Fmt.FIXED, 1),  # beep tones
    0xFA: (Fmt.FIXED, 1),  # card reader status
    0xFB: (Fmt.FIXED, 1),  # confirmation of input
    0xFC: (Fmt.FIXED, 1),  # dialog control
}

# Fields that may carry card data: a DEBUG hex dump stops at these tags.
SENSITIVE_BMPS = frozenset({0x22, 0x23, 0x24, 0x2D, 0x2E, 0x3A, 0xA7, 0xD1})


def bcd_encode(value: int, size: int) -> bytes:
    """Return ``value`` as ``size`` bytes of packed BCD."""
    digits = f"{value:0{size * 2}d}"
    if value < 0 or len(digits) != size * 2:
        raise ValueError(f"{value} does not fit {size} BCD bytes")
    return bytes.fromhex(digits)


def bcd_digits(data: bytes, what: str) -> str:
    """Return the decimal digits of packed BCD, rejecting non-decimal nibbles."""
    digits = data.hex()
    if not digits.isdigit():
        raise ZvtParseError(f"{what}: not BCD ({digits})")
    return digits


def bcd_decode(data: bytes, what: str) -> int:
    """Return packed BCD as an integer."""
    return int(bcd_digits(data, what))


def llvar_length(data: bytes, offset: int, digits: int, tag: int) -> int:
    """Read an ``Fx Fy (Fz)`` length prefix starting at ``offset``."""
    prefix = data[offset : offset + digits]
    if len(prefix) < digits or any(b & 0xF0 != 0xF0 or b & 0x0F > 9 for b in prefix):
        raise ZvtParseError(f"BMP {tag:02X}: bad length prefix {prefix.hex()}", offset)
    return int("".join(str(b & 0x0F) for b in prefix))


def llvar_prefix(length: int, digits: int) -> bytes:
    """Return the ``Fx Fy (Fz)`` length prefix for ``length``."""
    text = f"{length:0{digits}d}"
    if len(text) != digits:
        raise ValueError(f"length {length} does not fit {digits} digits")
    return bytes(0xF0 | int(c) for c in text)


@dataclass(frozen=True, slots=True)
class Bmp:
    """One bitmap field: tag and raw value (length prefix removed)."""

    tag: int
    value: bytes


def walk_bmps(data: bytes) -> Iterator[tuple[int, Bmp]]:
    """Yield ``(offset, Bmp)`` for each field; raise at the first bad one."""
    offset = 0
    while offset < len(data):
        tag = data[offset]
        fmt = BMP_FORMATS.get(tag)
        if fmt is None:
            raise ZvtParseError(f"unknown BMP {tag:02X}", offset)
        start, end = _bmp_extent(data, offset + 1, tag, fmt)
        if end > len(data):
            raise ZvtParseError(
                f"BMP {tag:02X}: needs {end - start} bytes, {len(data) - start} left",
                offset,
            )
        yield offset, Bmp(tag, data[start:end])
        offset = end


def _bmp_extent(
    data: bytes, pos: int, tag: int, fmt: tuple[Fmt, int]
) -> tuple[int, int]:
    kind, size = fmt
    if kind is Fmt.FIXED:
        return pos, pos + size
    if kind is Fmt.TLV:
        length, used = tlv_length(data, pos)
        return pos + used, pos + used + length
    digits = 2 if kind is Fmt.LLVAR else 3
    length = llvar_length(data, pos, digits, tag)
    return pos + digits, pos + digits + length


def parse_bmps(data: bytes) -> list[Bmp]:
    """Split a run of BMP fields; raise ZvtParseError on any malformed one."""
    return [bmp for _, bmp in walk_bmps(data)]


def encode_bmp(tag: int, value: bytes) -> bytes:
    """Encode one BMP field with the length prefix its format needs."""
    kind, size = BMP_FORMATS[tag]
    if kind is Fmt.FIXED:
        if len(value) != size:
            raise ValueError(f"BMP {tag:02X} takes {size} bytes, got {len(value)}")
        return bytes((tag,)) + value
    if kind is Fmt.TLV:
        return bytes((tag,)) + tlv_length_bytes(len(value)) + value
    digits = 2 if kind is Fmt.LLVAR else 3
    return bytes((tag,)) + llvar_prefix(len(value), digits) + value


def encode_bmps(bmps: list[Bmp]) -> bytes:
    """Encode BMP fields in the given order."""
    return b"".join(encode_bmp(b.tag, b.value) for b in bmps)


@dataclass(frozen=True, slots=True)
class Tlv:
    """One TLV object; ``children`` is set for constructed tags."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] | None = None

    def find(self, tag: int) -> list[Tlv]:
        """Return the direct children with ``tag``."""
        return [c for c in self.children or () if c.tag == tag]


def tlv_length(data: bytes, pos: int) -> tuple[int, int]:
    """Return ``(length, bytes used)`` of a BER length at ``pos``."""
    if pos >= len(data):
        raise ZvtParseError("TLV length missing", pos)
    first = data[pos]
    if first < 0x80:
        return first, 1
    count = first & 0x7F
    if count not in (1, 2) or pos + 1 + count > len(data):
        raise ZvtParseError(f"bad TLV length byte {first:02X}", pos)
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), 1 + count


def tlv_length_bytes(length: int) -> bytes:
    """Return the BER length encoding for ``length``."""
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    return bytes((0x82,)) + length.to_bytes(2, "big")


def _tlv_tag(data: bytes, pos: int) -> tuple[int, int, bool]:
    """Return ``(tag, bytes used, constructed)`` of a BER tag at ``pos``."""
    first = data[pos]
    end = pos + 1
    if first & 0x1F == 0x1F:
        while end < len(data) and data[end] & 0x80:
            end += 1
        end += 1
        if end > len(data):
            raise ZvtParseError("TLV tag runs past the end", pos)
    return int.from_bytes(data[pos:end], "big"), end - pos, bool(first & 0x20)


def parse_tlv(data: bytes) -> tuple[Tlv, ...]:
    """Parse a TLV container's content recursively."""
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        tag, used, constructed = _tlv_tag(data, pos)
        length, lused = tlv_length(data, pos + used)
        start = pos + used + lused
        if start + length > len(data):
            raise ZvtParseError(
                f"TLV {tag:X}: declares {length} bytes, {len(data) - start} left", pos
            )
        value = data[start : start + length]
        children = parse_tlv(value) if constructed else None
        items.append(Tlv(tag, value, children))
        pos = start + length
    return tuple(items)


def encode_tlv(tag: int, value: bytes) -> bytes:
    """Encode one primitive or pre-encoded constructed TLV object."""
    size = max(1, (tag.bit_length() + 7) // 8)
    return tag.to_bytes(size, "big") + tlv_length_bytes(len(value)) + value
