"""ZVT serial framing: DLE stuffing, CRC-16/KERMIT and an incremental decoder.

Transport layer of the ZVT ECR interface over RS-232 (PA00P016, "Transport
protocol", serial): ``DLE STX`` + APDU with every ``DLE`` doubled + ``DLE ETX``
+ CRC over the unstuffed APDU followed by ``ETX``, low byte first. The receiver
answers each frame with a single ``ACK`` or ``NAK`` byte. Pure code, no I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum, auto

logger = logging.getLogger(__name__)

# PA00P016 transport protocol, serial: control characters.
DLE = 0x10
STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15

FRAME_START = bytes((DLE, STX))
FRAME_END = bytes((DLE, ETX))
ACK_BYTE = bytes((ACK,))
NAK_BYTE = bytes((NAK,))

# Largest APDU a ZVT length field can describe: 3 header bytes + FF + 2-byte
# length + 65535 data bytes. Anything longer is noise, not a frame.
MAX_APDU_LEN = 3 + 2 + 0xFFFF

_CRC_POLY_REFLECTED = 0x8408  # CRC-16/KERMIT (CCITT, reflected), init 0


def crc16_kermit(data: bytes) -> int:
    """Return the CRC-16/KERMIT of ``data`` (reflected 0x8408, init 0)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC_POLY_REFLECTED if crc & 1 else crc >> 1
    return crc


def frame_crc(apdu: bytes) -> bytes:
    """Return the two CRC bytes (low first) for an unstuffed APDU."""
    crc = crc16_kermit(apdu + bytes((ETX,)))
    return bytes((crc & 0xFF, crc >> 8))


def stuff(apdu: bytes) -> bytes:
    """Double every DLE in ``apdu``."""
    return apdu.replace(bytes((DLE,)), bytes((DLE, DLE)))


def encode_frame(apdu: bytes) -> bytes:
    """Wrap an APDU into a serial frame: DLE STX, stuffed APDU, DLE ETX, CRC."""
    return FRAME_START + stuff(apdu) + FRAME_END + frame_crc(apdu)


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """A complete frame with a valid CRC."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class AckReceived:
    """A single ACK byte outside a frame."""


@dataclass(frozen=True, slots=True)
class NakReceived:
    """A single NAK byte outside a frame."""


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame whose CRC did not match; the sender expects a NAK."""

    apdu: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that belong to no frame (line noise, a torn frame)."""

    data: bytes
    reason: str


FrameEvent = ApduReceived | AckReceived | NakReceived | BadFrame | Garbage


class _State(Enum):
    IDLE = auto()
    IDLE_DLE = auto()
    BODY = auto()
    BODY_DLE = auto()
    CRC_LOW = auto()
    CRC_HIGH = auto()


class FrameDecoder:
    """Turn a byte stream split at arbitrary points into frame events."""

    def __init__(self) -> None:
        self._state = _State.IDLE
        self._body = bytearray()
        self._crc_low = 0
        self._garbage = bytearray()
        self._events: list[FrameEvent] = []

    @property
    def idle(self) -> bool:
        """Return True when no frame is partly received."""
        return self._state is _State.IDLE

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Consume ``data`` and return the events it completes."""
        for byte in data:
            self._step(byte)
        self._flush_garbage("bytes outside a frame")
        events, self._events = self._events, []
        return events

    def _step(self, byte: int) -> None:
        handler = _HANDLERS[self._state]
        handler(self, byte)

    def _on_idle(self, byte: int) -> None:
        if byte == DLE:
            self._state = _State.IDLE_DLE
        elif byte in (ACK, NAK):
            self._flush_garbage("bytes outside a frame")
            self._events.append(AckReceived() if byte == ACK else NakReceived())
        else:
            self._garbage.append(byte)

    def _on_idle_dle(self, byte: int) -> None:
        if byte == STX:
            self._flush_garbage("bytes outside a frame")
            self._body.clear()
            self._state = _State.BODY
            return
        self._garbage += bytes((DLE,))
        self._state = _State.IDLE
        self._on_idle(byte)

    def _on_body(self, byte: int) -> None:
        if byte == DLE:
            self._state = _State.BODY_DLE
        elif len(self._body) >= MAX_APDU_LEN:
            self._tear("frame longer than any APDU")
            self._on_idle(byte)
        else:
            self._body.append(byte)

    def _on_body_dle(self, byte: int) -> None:
        if byte == DLE:
            self._body.append(DLE)
            self._state = _State.BODY
        elif byte == ETX:
            self._state = _State.CRC_LOW
        elif byte == STX:
            # A new DLE STX inside a frame: the previous frame was torn off.
            self._tear("frame restarted before DLE ETX")
            self._state = _State.BODY
        else:
            self._tear(f"unstuffed DLE followed by {byte:02X}")
            self._on_idle(byte)

    def _on_crc_low(self, byte: int) -> None:
        self._crc_low = byte
        self._state = _State.CRC_HIGH

    def _on_crc_high(self, byte: int) -> None:
        apdu = bytes(self._body)
        self._body.clear()
        self._state = _State.IDLE
        if bytes((self._crc_low, byte)) == frame_crc(apdu):
            self._events.append(ApduReceived(apdu))
        else:
            self._events.append(BadFrame(apdu, "CRC mismatch"))

    def _tear(self, reason: str) -> None:
        self._events.append(Garbage(FRAME_START + stuff(bytes(self._body)), reason))
        self._body.clear()
        self._state = _State.IDLE

    def _flush_garbage(self, reason: str) -> None:
        if self._garbage:
            self._events.append(Garbage(bytes(self._garbage), reason))
            self._garbage.clear()


_HANDLERS = {
    _State.IDLE: FrameDecoder._on_idle,
    _State.IDLE_DLE: FrameDecoder._on_idle_dle,
    _State.BODY: FrameDecoder._on_body,
    _State.BODY_DLE: FrameDecoder._on_body_dle,
    _State.CRC_LOW: FrameDecoder._on_crc_low,
    _State.CRC_HIGH: FrameDecoder._on_crc_high,
}
