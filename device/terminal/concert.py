"""Concert V2 ("Caisse-AP") framing and messages for Ingenico Telium terminals.

Session (serial or USB-CDC, 7 data bits, even parity): the sender opens with
``ENQ`` and waits for ``ACK``, sends ``STX`` body ``ETX`` ``LRC`` (XOR of body
and ``ETX``), waits for ``ACK`` (``NAK`` means resend), then closes with
``EOT``. The terminal answers the same way once the customer is done. Field
layout as published for Concert V2 (fixed width, ASCII digits). Pure code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger(__name__)

# Concert V2, transmission control characters.
ENQ = 0x05
ACK = 0x06
NAK = 0x15
STX = 0x02
ETX = 0x03
EOT = 0x04
CONTROL_BYTES = frozenset({ENQ, ACK, NAK, EOT})

MAX_BODY_LEN = 512  # Concert frames carry at most 512 data bytes

# Concert V2 request fields (cash register -> terminal), in order and width.
REQUEST_LAYOUT = (
    ("pos_number", 2),
    ("amount", 8),
    ("answer_flag", 1),
    ("payment_mode", 1),
    ("transaction_type", 1),
    ("currency", 3),
    ("private", 10),
    ("delay", 1),
    ("authorisation", 1),
)
# The terminal's reply inserts the status byte after the till number.
REPLY_LAYOUT = REQUEST_LAYOUT[:1] + (("status", 1),) + REQUEST_LAYOUT[1:]
REQUEST_LEN = sum(width for _, width in REQUEST_LAYOUT)
REPLY_LEN = sum(width for _, width in REPLY_LAYOUT)

STATUS_SUCCESS = "0"  # transaction performed
STATUS_FAILED = "7"  # transaction refused or not performed
ANSWER_REQUESTED = "1"
MODE_CARD = "1"
DELAY_END_OF_TRANSACTION = "A"
AUTHORISATION_DEFAULT = "B"
NO_PRIVATE_DATA = " " * 10


class ConcertParseError(ValueError):
    """Raised when bytes are not a well-formed Concert frame or message."""


class TransactionType(Enum):
    """Concert V2 TYPE field."""

    DEBIT = "0"
    CREDIT = "1"
    CANCEL = "2"


def lrc(data: bytes) -> int:
    """Return the XOR of all bytes of ``data``."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def encode_frame(body: bytes) -> bytes:
    """Wrap a message body: STX, body, ETX, LRC over body and ETX."""
    if any(b < 0x20 or b > 0x7F for b in body):
        raise ValueError("Concert bodies are printable 7-bit ASCII")
    tail = body + bytes((ETX,))
    return bytes((STX,)) + tail + bytes((lrc(tail),))


@dataclass(frozen=True, slots=True)
class Control:
    """A single ENQ, ACK, NAK or EOT byte."""

    byte: int


@dataclass(frozen=True, slots=True)
class Message:
    """A frame with a valid LRC."""

    body: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame with a wrong LRC or overlong body; answer NAK."""

    body: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes outside any frame."""

    data: bytes


ConcertEvent = Control | Message | BadFrame | Garbage


class ConcertDecoder:
    """Turn a byte stream split anywhere into Concert events."""

    def __init__(self) -> None:
        self._body: bytearray | None = None
        self._await_lrc = False
        self._garbage = bytearray()

    def feed(self, data: bytes) -> list[ConcertEvent]:
        """Consume ``data`` and return the events it completes."""
        events: list[ConcertEvent] = []
        for raw in data:
            self._step(raw & 0x7F, events)  # drop the parity bit
        self._flush(events)
        return events

    def _step(self, byte: int, events: list[ConcertEvent]) -> None:
        if self._await_lrc:
            self._finish(byte, events)
        elif self._body is not None:
            self._in_body(byte, events)
        elif byte == STX:
            self._flush(events)
            self._body = bytearray()
        elif byte in CONTROL_BYTES:
            self._flush(events)
            events.append(Control(byte))
        else:
            self._garbage.append(byte)

    def _in_body(self, byte: int, events: list[ConcertEvent]) -> None:
        assert self._body is not None
        if byte == ETX:
            self._await_lrc = True
        elif byte == STX or len(self._body) >= MAX_BODY_LEN:
            events.append(BadFrame(bytes(self._body), "frame torn before ETX"))
            self._body = bytearray() if byte == STX else None
        else:
            self._body.append(byte)

    def _finish(self, byte: int, events: list[ConcertEvent]) -> None:
        assert self._body is not None
        body = bytes(self._body)
        self._body, self._await_lrc = None, False
        if lrc(body + bytes((ETX,))) == byte:
            events.append(Message(body))
        else:
            events.append(BadFrame(body, "LRC mismatch"))

    def _flush(self, events: list[ConcertEvent]) -> None:
        if self._garbage:
            events.append(Garbage(bytes(self._garbage)))
            self._garbage.clear()


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What the cash register asks the terminal to do."""

    amount_minor: int
    currency_numeric: str = "978"
    transaction_type: TransactionType = TransactionType.DEBIT
    pos_number: str = "01"
    private: str = NO_PRIVATE_DATA
    payment_mode: str = MODE_CARD
    answer_flag: str = ANSWER_REQUESTED
    delay: str = DELAY_END_OF_TRANSACTION
    authorisation: str = AUTHORISATION_DEFAULT


@dataclass(frozen=True, slots=True)
class PaymentReply:
    """The terminal's answer after the transaction."""

    pos_number: str
    status: str
    amount_minor: int
    payment_mode: str
    transaction_type: str
    currency_numeric: str
    private: str

    @property
    def approved(self) -> bool:
        """Return True only for a reply whose status says performed."""
        return self.status == STATUS_SUCCESS


def _fields(values: dict[str, str], layout: tuple[tuple[str, int], ...]) -> bytes:
    out = ""
    for name, width in layout:
        value = values[name]
        if len(value) != width:
            raise ValueError(f"Concert field {name} must be {width} chars: {value!r}")
        out += value
    return out.encode("ascii")


def _split(body: bytes, layout: tuple[tuple[str, int], ...]) -> dict[str, str]:
    text = body.decode("ascii")
    values, pos = {}, 0
    for name, width in layout:
        values[name], pos = text[pos : pos + width], pos + width
    return values


def encode_request(request: PaymentRequest) -> bytes:
    """Return the body of a payment request (without STX/ETX/LRC)."""
    return _fields(
        {
            "pos_number": request.pos_number,
            "amount": f"{request.amount_minor:08d}",
            "answer_flag": request.answer_flag,
            "payment_mode": request.payment_mode,
            "transaction_type": request.transaction_type.value,
            "currency": request.currency_numeric,
            "private": request.private,
            "delay": request.delay,
            "authorisation": request.authorisation,
        },
        REQUEST_LAYOUT,
    )


def _digits(value: str, name: str) -> int:
    if not value.isdigit():
        raise ConcertParseError(f"{name} is not numeric: {value!r}")
    return int(value)


def decode_request(body: bytes) -> PaymentRequest:
    """Parse a payment request body (as the terminal simulator sees it)."""
    if len(body) != REQUEST_LEN:
        raise ConcertParseError(f"request must be {REQUEST_LEN} chars, got {len(body)}")
    v = _split(body, REQUEST_LAYOUT)
    try:
        kind = TransactionType(v["transaction_type"])
    except ValueError as err:
        raise ConcertParseError(f"unknown type {v['transaction_type']!r}") from err
    return PaymentRequest(
        _digits(v["amount"], "amount"),
        v["currency"],
        kind,
        v["pos_number"],
        v["private"],
        v["payment_mode"],
        v["answer_flag"],
        v["delay"],
        v["authorisation"],
    )


def encode_reply(reply: PaymentReply, request: PaymentRequest) -> bytes:
    """Return the body of a terminal reply (used by the simulator)."""
    return _fields(
        {
            "pos_number": reply.pos_number,
            "status": reply.status,
            "amount": f"{reply.amount_minor:08d}",
            "answer_flag": request.answer_flag,
            "payment_mode": reply.payment_mode,
            "transaction_type": reply.transaction_type,
            "currency": reply.currency_numeric,
            "private": reply.private,
            "delay": request.delay,
            "authorisation": request.authorisation,
        },
        REPLY_LAYOUT,
    )


def decode_reply(body: bytes) -> PaymentReply:
    """Parse the terminal's reply body; raise ConcertParseError if malformed."""
    if len(body) != REPLY_LEN:
        raise ConcertParseError(f"reply must be {REPLY_LEN} chars, got {len(body)}")
    v = _split(body, REPLY_LAYOUT)
    return PaymentReply(
        v["pos_number"],
        v["status"],
        _digits(v["amount"], "amount"),
        v["payment_mode"],
        v["transaction_type"],
        v["currency"],
        v["private"],
    )
