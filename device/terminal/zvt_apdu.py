"""ZVT application layer: APDUs, the messages a terminal sends, ECR commands.

Layouts follow the ZVT ECR interface (PA00P015): an APDU is class, instruction,
length (``FF`` + 2-byte little-endian length for long data) and data. Pure code:
bytes in, frozen dataclasses out, ``ZvtParseError`` for anything malformed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from device.terminal.zvt_fields import (
    SENSITIVE_BMPS,
    Bmp,
    Tlv,
    ZvtParseError,
    bcd_decode,
    bcd_digits,
    bcd_encode,
    encode_bmp,
    encode_tlv,
    llvar_length,
    parse_bmps,
    parse_tlv,
    walk_bmps,
)

logger = logging.getLogger(__name__)

__all__ = ["ZvtParseError"]

# PA00P015 command classes/instructions, ECR -> PT.
CMD_REGISTRATION = b"\x06\x00"
CMD_AUTHORISATION = b"\x06\x01"
CMD_LOG_OFF = b"\x06\x02"
CMD_REPEAT_RECEIPT = b"\x06\x20"
CMD_REVERSAL = b"\x06\x30"
CMD_REFUND = b"\x06\x31"
CMD_END_OF_DAY = b"\x06\x50"
CMD_INITIALISATION = b"\x06\x93"
CMD_ABORT = b"\x06\xb0"
CMD_STATUS_ENQUIRY = b"\x05\x01"
# PT -> ECR.
MSG_STATUS_INFO = b"\x04\x0f"
MSG_INTERMEDIATE = b"\x04\xff"
MSG_COMPLETION = b"\x06\x0f"
MSG_ABORT = b"\x06\x1e"
MSG_PRINT_LINE = b"\x06\xd1"
MSG_TEXT_BLOCK = b"\x06\xd3"
# Either direction: positive acknowledgement / rejection with an error code.
ACK_CLASS = 0x80
REJECT_CLASS = 0x84
POSITIVE_ACK = b"\x80\x00\x00"

# Commands whose data starts with a 3-byte BCD password, then BMP fields.
_PASSWORD_COMMANDS = frozenset(
    {
        CMD_REGISTRATION,
        CMD_STATUS_ENQUIRY,
        CMD_END_OF_DAY,
        CMD_REVERSAL,
        CMD_REFUND,
        CMD_REPEAT_RECEIPT,
        CMD_INITIALISATION,
    }
)

# Commands that start with untagged bytes before their BMPs (06 C0 read card:
# a timeout byte).
_UNTAGGED_PREFIX = {b"\x06\xc0": 1}

# PA00P015 result codes (BMP 27) a cashier should see in words.
RESULT_SUCCESS = 0x00
RESULT_ABORTED = 0x6C
RESULT_PLEASE_WAIT = 0x9C
RESULT_END_OF_DAY_REQUIRED = 0xF0
RESULT_SYSTEM_ERROR = 0xFF
RESULT_TEXTS: dict[int, str] = {
    0x00: "approved",
    0x05: "declined by the card issuer",
    0x64: "card not readable",
    0x6C: "aborted (timeout or abort key)",
    0x78: "card expired",
    0x9C: "terminal busy, please wait",
    0xA0: "terminal not ready",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xF0: "end-of-day required",
    0xFF: "terminal system error",
}

# ZVT card-type list (BMP 8A), used when the terminal sends no card name.
CARD_TYPE_NAMES: dict[int, str] = {
    0x05: "girocard",
    0x06: "Mastercard",
    0x08: "American Express",
    0x0A: "Visa",
    0x0C: "Diners",
    0x0D: "V PAY",
    0x0E: "JCB",
    0x2E: "Maestro",
}

# BMP 60 individual totals: card groups in the order the spec lists them.
TOTALS_GROUPS = (
    "girocard",
    "JCB",
    "Mastercard",
    "American Express",
    "Visa",
    "Diners",
    "other",
)
_TOTALS_LEN = 4 + 7 * len(TOTALS_GROUPS)

DEFAULT_TEXT_ENCODING = "cp437"  # ZVT default character set


@dataclass(frozen=True, slots=True)
class Apdu:
    """A ZVT APDU split into command bytes and data."""

    cls: int
    instr: int
    data: bytes

    @property
    def command(self) -> bytes:
        """Return the two command bytes."""
        return bytes((self.cls, self.instr))


def encode_apdu(command: bytes, data: bytes = b"") -> bytes:
    """Return command + length + data, using the FF long form above 254 bytes."""
    if len(data) > 0xFFFF:
        raise ValueError(f"APDU data too long: {len(data)} bytes")
    if len(data) < 0xFF:
        return command + bytes((len(data),)) + data
    return command + b"\xff" + len(data).to_bytes(2, "little") + data


def decode_apdu(raw: bytes) -> Apdu:
    """Split raw bytes into an APDU; the length must match the data exactly."""
    if len(raw) < 3:
        raise ZvtParseError(f"APDU too short: {len(raw)} bytes")
    length, start = raw[2], 3
    if length == 0xFF:
        if len(raw) < 5:
            raise ZvtParseError("APDU long-form length truncated")
        length, start = int.from_bytes(raw[3:5], "little"), 5
    if len(raw) - start != length:
        raise ZvtParseError(
            f"APDU {raw[:2].hex()}: length field says {length} data bytes, "
            f"{len(raw) - start} present"
        )
    return Apdu(raw[0], raw[1], raw[start:])


def mask_pan(digits: str) -> str:
    """Keep at most the first 6 and last 4 digits of a PAN, mask the rest."""
    digits = digits.split("D", 1)[0]  # a track separator ends the PAN
    first = 6 if len(digits) >= 13 else 0
    visible = {i for i in range(len(digits)) if i < first or i >= len(digits) - 4}
    masked = (c if i in visible and c.isdigit() else "*" for i, c in enumerate(digits))
    return "".join(masked)


def _pan_from_bmp(value: bytes) -> str:
    nibbles = value.hex().upper().rstrip("F")
    return mask_pan(nibbles.replace("E", "*"))


def _text(value: bytes, encoding: str) -> str:
    return value.split(b"\x00", 1)[0].decode(encoding, errors="replace")


def _strip_text(value: bytes, encoding: str) -> str:
    return _text(value, encoding).strip()


@dataclass(frozen=True, slots=True)
class BrandTotal:
    """Count and sum of one card group in an end-of-day report."""

    brand: str
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Individual totals (BMP 60) of an end-of-day batch."""

    receipt_from: int
    receipt_to: int
    brands: tuple[BrandTotal, ...]


def decode_totals(value: bytes) -> Totals:
    """Decode BMP 60: receipt range, then count and BCD sum per card group."""
    if len(value) != _TOTALS_LEN:
        raise ZvtParseError(
            f"BMP 60 totals: expected {_TOTALS_LEN} bytes, got {len(value)}"
        )
    brands = []
    for i, brand in enumerate(TOTALS_GROUPS):
        pos = 4 + 7 * i
        amount = bcd_decode(value[pos + 1 : pos + 7], f"BMP 60 {brand} sum")
        brands.append(BrandTotal(brand, value[pos], amount))
    return Totals(
        bcd_decode(value[0:2], "BMP 60 first receipt"),
        bcd_decode(value[2:4], "BMP 60 last receipt"),
        tuple(brands),
    )


def encode_totals(totals: Totals) -> bytes:
    """Encode BMP 60 individual totals."""
    body = bcd_encode(totals.receipt_from, 2) + bcd_encode(totals.receipt_to, 2)
    by_brand = {b.brand: b for b in totals.brands}
    for brand in TOTALS_GROUPS:
        item = by_brand.get(brand, BrandTotal(brand, 0, 0))
        body += bytes((item.count,)) + bcd_encode(item.amount_minor, 6)
    return body


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """04 0F status information: the outcome of a transaction."""

    result_code: int | None = None
    amount_minor: int | None = None
    currency_code: int | None = None
    trace: int | None = None
    receipt_no: int | None = None
    turnover_no: int | None = None
    masked_pan: str | None = None
    card_type: int | None = None
    card_name: str | None = None
    time_hhmmss: str | None = None
    date_mmdd: str | None = None
    terminal_id: str | None = None
    auth_code: str | None = None
    text: str | None = None
    totals: Totals | None = None

    @property
    def brand(self) -> str | None:
        """Return the card brand: the terminal's name, else the type table's."""
        if self.card_name:
            return self.card_name
        if self.card_type is None:
            return None
        return CARD_TYPE_NAMES.get(self.card_type, f"card type {self.card_type:02X}")


def _status_fields(bmp: Bmp, encoding: str) -> dict[str, object]:
    """Map one BMP of a 04 0F message to StatusInfo fields."""
    tag, value = bmp.tag, bmp.value
    simple: dict[int, tuple[str, object]] = {
        0x27: ("result_code", lambda: value[0]),
        0x04: ("amount_minor", lambda: bcd_decode(value, "BMP 04 amount")),
        0x49: ("currency_code", lambda: bcd_decode(value, "BMP 49 currency")),
        0x0B: ("trace", lambda: bcd_decode(value, "BMP 0B trace")),
        0x87: ("receipt_no", lambda: bcd_decode(value, "BMP 87 receipt")),
        0x88: ("turnover_no", lambda: bcd_decode(value, "BMP 88 turnover")),
        0x22: ("masked_pan", lambda: _pan_from_bmp(value)),
        0x8A: ("card_type", lambda: value[0]),
        0x8B: ("card_name", lambda: _strip_text(value, encoding)),
        0x0C: ("time_hhmmss", lambda: bcd_digits(value, "BMP 0C time")),
        0x0D: ("date_mmdd", lambda: bcd_digits(value, "BMP 0D date")),
        0x29: ("terminal_id", lambda: bcd_digits(value, "BMP 29 terminal id")),
        0x3B: ("auth_code", lambda: _strip_text(value, "ascii")),
        0x3C: ("text", lambda: _text(value, encoding)),
        0x60: ("totals", lambda: decode_totals(value)),
    }
    if tag not in simple:
        return {}
    name, getter = simple[tag]
    return {name: getter()}  # type: ignore[operator]


def decode_status_info(
    data: bytes, encoding: str = DEFAULT_TEXT_ENCODING
) -> StatusInfo:
    """Decode the data of a 04 0F message."""
    fields: dict[str, object] = {}
    for bmp in parse_bmps(data):
        fields.update(_status_fields(bmp, encoding))
    return StatusInfo(**fields)  # type: ignore[arg-type]


def _display_lines(container: tuple[Tlv, ...], encoding: str) -> list[str]:
    """Return the text lines (TLV 07) under display/print containers."""
    lines: list[str] = []
    for item in container:
        if item.tag == 0x07:
            lines.append(_text(item.value, encoding))
        elif item.children is not None:
            lines += _display_lines(item.children, encoding)
    return lines


def _tlv_of(bmps: list[Bmp]) -> tuple[Tlv, ...]:
    for bmp in bmps:
        if bmp.tag == 0x06:
            return parse_tlv(bmp.value)
    return ()


@dataclass(frozen=True, slots=True)
class IntermediateStatus:
    """04 FF intermediate status: what the terminal is waiting for."""

    code: int
    timeout_s: int | None = None
    text: str | None = None

    @property
    def prompt(self) -> str:
        """Return the text to show the cashier."""
        return self.text or INTERMEDIATE_TEXTS.get(self.code, f"status {self.code:02X}")


# PA00P015 intermediate status codes we show in words when no text comes along.
INTERMEDIATE_CODE_WATCH_PIN_PAD = 0x01
INTERMEDIATE_CODE_INSERT_CARD = 0x0A
INTERMEDIATE_CODE_PLEASE_WAIT = 0x0E
INTERMEDIATE_TEXTS: dict[int, str] = {
    0x00: "waiting for amount confirmation",
    0x01: "please watch the PIN pad",
    0x02: "please watch the PIN pad",
    0x04: "waiting for the card issuer",
    0x0A: "insert card",
    0x0B: "remove card",
    0x0C: "card not readable",
    0x0E: "please wait",
    0x15: "incorrect PIN",
    0x17: "please wait",
}


def decode_intermediate(data: bytes, encoding: str) -> IntermediateStatus:
    """Decode the data of a 04 FF message: code, optional timeout, BMPs."""
    if not data:
        raise ZvtParseError("04 FF without status code")
    timeout = data[1] if len(data) > 1 else None
    lines = _display_lines(_tlv_of(parse_bmps(data[2:])), encoding)
    return IntermediateStatus(data[0], timeout, "\n".join(lines) or None)


@dataclass(frozen=True, slots=True)
class Completion:
    """06 0F completion: the terminal hands control back to the ECR."""

    terminal_status: int | None = None
    sw_version: str | None = None
    terminal_id: str | None = None
    currency_code: int | None = None


def decode_completion(data: bytes) -> Completion:
    """Decode 06 0F; after a status enquiry it starts with version + status."""
    if data and data[0] & 0xF0 == 0xF0:
        length = llvar_length(data, 0, 3, 0x0F)
        end = 3 + length
        if end >= len(data):
            raise ZvtParseError("06 0F: software version without terminal status")
        parse_bmps(data[end + 1 :])
        return Completion(data[end], data[3:end].decode("ascii", "replace"))
    if len(data) == 1:
        return Completion(terminal_status=data[0])
    try:
        bmps = parse_bmps(data)
    except ZvtParseError:
        parse_bmps(data[1:])  # terminal status byte, then BMPs
        return Completion(terminal_status=data[0])
    return _completion_from_bmps(bmps)


def _completion_from_bmps(bmps: list[Bmp]) -> Completion:
    fields: dict[str, object] = {}
    for bmp in bmps:
        if bmp.tag == 0x29:
            fields["terminal_id"] = bcd_digits(bmp.value, "BMP 29 terminal id")
        elif bmp.tag == 0x49:
            fields["currency_code"] = bcd_decode(bmp.value, "BMP 49 currency")
    return Completion(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AbortMessage:
    """06 1E abort from the terminal: the transaction was not carried out."""

    result_code: int
    text: str | None = None


def decode_abort(data: bytes, encoding: str) -> AbortMessage:
    """Decode 06 1E: result code, then optional BMPs (TLV 1F17 error text)."""
    if not data:
        raise ZvtParseError("06 1E without result code")
    text = None
    for item in _tlv_of(parse_bmps(data[1:])):
        if item.tag == 0x1F17:
            text = _text(item.value, encoding)
    return AbortMessage(data[0], text)


@dataclass(frozen=True, slots=True)
class PrintLine:
    """06 D1 one receipt line."""

    attribute: int
    text: str


@dataclass(frozen=True, slots=True)
class TextBlock:
    """06 D3 a block of receipt lines."""

    receipt_type: int | None
    lines: tuple[str, ...]


# TLV 1F07 receipt types in a text block.
RECEIPT_MERCHANT = 0x01
RECEIPT_CUSTOMER = 0x02
RECEIPT_ADMIN = 0x03


def decode_text_block(data: bytes, encoding: str) -> TextBlock:
    """Decode 06 D3: TLV 1F07 receipt type and TLV 25 print text lines."""
    tlv = _tlv_of(parse_bmps(data))
    receipt_type = next((t.value[0] for t in tlv if t.tag == 0x1F07 and t.value), None)
    blocks = [t for t in tlv if t.tag == 0x25]
    return TextBlock(receipt_type, tuple(_display_lines(tuple(blocks), encoding)))


@dataclass(frozen=True, slots=True)
class PositiveAck:
    """80 00: the last message was accepted."""


@dataclass(frozen=True, slots=True)
class Reject:
    """84 xx: the last message was rejected with error code xx."""

    code: int


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A well-formed APDU this driver does not interpret."""

    apdu: Apdu


TerminalMessage = (
    StatusInfo
    | IntermediateStatus
    | Completion
    | AbortMessage
    | PrintLine
    | TextBlock
    | PositiveAck
    | Reject
    | OtherMessage
)


def decode_message(
    raw: bytes, encoding: str = DEFAULT_TEXT_ENCODING
) -> TerminalMessage:
    """Decode an APDU sent by the terminal; raise ZvtParseError if malformed."""
    apdu = decode_apdu(raw)
    if apdu.cls == ACK_CLASS:
        return PositiveAck()
    if apdu.cls == REJECT_CLASS:
        return Reject(apdu.instr)
    decoder = _MESSAGE_DECODERS.get(apdu.command)
    if decoder is None:
        return OtherMessage(apdu)
    try:
        return decoder(apdu.data, encoding)
    except ZvtParseError as err:
        raise ZvtParseError(f"{apdu.command.hex(' ')}: {err}") from err


def _print_line(data: bytes, encoding: str) -> PrintLine:
    if not data:
        raise ZvtParseError("06 D1 without attribute byte")
    return PrintLine(data[0], _text(data[1:], encoding))


_MessageDecoder = Callable[[bytes, str], TerminalMessage]
_MESSAGE_DECODERS: dict[bytes, _MessageDecoder] = {
    MSG_STATUS_INFO: decode_status_info,
    MSG_INTERMEDIATE: decode_intermediate,
    MSG_COMPLETION: lambda data, _enc: decode_completion(data),
    MSG_ABORT: decode_abort,
    MSG_PRINT_LINE: _print_line,
    MSG_TEXT_BLOCK: decode_text_block,
}


@dataclass(frozen=True, slots=True)
class EcrCommand:
    """A command from the cash register, split into its parts."""

    command: bytes
    password: str | None
    bmps: tuple[Bmp, ...]
    config_byte: int | None = None
    currency_code: int | None = None

    def field(self, tag: int) -> bytes | None:
        """Return the value of BMP ``tag``, if present."""
        return next((b.value for b in self.bmps if b.tag == tag), None)

    @property
    def amount_minor(self) -> int | None:
        """Return BMP 04 as an integer amount in minor units."""
        value = self.field(0x04)
        return None if value is None else bcd_decode(value, "BMP 04 amount")


def decode_ecr_command(raw: bytes) -> EcrCommand:
    """Decode a command an ECR sends (as the terminal simulator sees it)."""
    apdu = decode_apdu(raw)
    data = apdu.data
    try:
        if apdu.command == CMD_REGISTRATION:
            return _decode_registration(data)
        if apdu.command in _PASSWORD_COMMANDS:
            if len(data) < 3:
                raise ZvtParseError("password missing")
            password = bcd_digits(data[:3], "password")
            return EcrCommand(apdu.command, password, tuple(parse_bmps(data[3:])))
        skip = _UNTAGGED_PREFIX.get(apdu.command, 0)
        return EcrCommand(apdu.command, None, tuple(parse_bmps(data[skip:])))
    except ZvtParseError as err:
        raise ZvtParseError(f"{apdu.command.hex(' ')}: {err}") from err


def _decode_registration(data: bytes) -> EcrCommand:
    if len(data) < 4:
        raise ZvtParseError("registration needs password and config byte")
    password = bcd_digits(data[:3], "password")
    rest, currency = data[4:], None
    # The currency code has no BMP tag; BMPs 03 and 06 may follow instead.
    if len(rest) >= 2 and rest[0] not in (0x03, 0x06):
        currency, rest = bcd_decode(rest[:2], "currency"), rest[2:]
    bmps = tuple(parse_bmps(rest))
    return EcrCommand(CMD_REGISTRATION, password, bmps, data[3], currency)


def _password(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit():
        raise ValueError("ZVT password must be 6 digits")
    return bytes.fromhex(password)


def registration(password: str, config_byte: int, currency_code: int) -> bytes:
    """Build 06 00 registration: password, config byte, currency code."""
    data = _password(password) + bytes((config_byte,)) + bcd_encode(currency_code, 2)
    return encode_apdu(CMD_REGISTRATION, data)


def _amount_bmps(amount_minor: int, currency_code: int | None) -> bytes:
    data = encode_bmp(0x04, bcd_encode(amount_minor, 6))
    if currency_code is not None:
        data += encode_bmp(0x49, bcd_encode(currency_code, 2))
    return data


def authorisation(amount_minor: int, currency_code: int | None = None) -> bytes:
    """Build 06 01 authorisation for an amount in minor units."""
    if amount_minor <= 0:
        raise ValueError("authorisation amount must be positive")
    return encode_apdu(CMD_AUTHORISATION, _amount_bmps(amount_minor, currency_code))


def status_enquiry(password: str) -> bytes:
    """Build 05 01 status enquiry."""
    return encode_apdu(CMD_STATUS_ENQUIRY, _password(password))


def end_of_day(password: str) -> bytes:
    """Build 06 50 end-of-day."""
    return encode_apdu(CMD_END_OF_DAY, _password(password))


def reversal(password: str, receipt_no: int) -> bytes:
    """Build 06 30 reversal of the transaction with ``receipt_no``."""
    data = _password(password) + encode_bmp(0x87, bcd_encode(receipt_no, 2))
    return encode_apdu(CMD_REVERSAL, data)


def refund(password: str, amount_minor: int, currency_code: int | None = None) -> bytes:
    """Build 06 31 refund of an amount in minor units."""
    data = _password(password) + _amount_bmps(amount_minor, currency_code)
    return encode_apdu(CMD_REFUND, data)


def repeat_receipt(password: str) -> bytes:
    """Build 06 20 repeat receipt: the terminal resends its last transaction."""
    return encode_apdu(CMD_REPEAT_RECEIPT, _password(password))


def abort_command() -> bytes:
    """Build 06 B0 abort."""
    return encode_apdu(CMD_ABORT)


def reject(code: int) -> bytes:
    """Build 84 xx rejecting the last message with error ``code``."""
    return bytes((REJECT_CLASS, code, 0))


# How many bytes precede the BMP fields, per command, for redaction.
_BMP_OFFSETS = {
    MSG_STATUS_INFO: 0,
    CMD_AUTHORISATION: 0,
    MSG_ABORT: 1,
    MSG_INTERMEDIATE: 2,
    CMD_REFUND: 3,
    CMD_REVERSAL: 3,
}
_SAFE_WITHOUT_BMPS = frozenset(
    {POSITIVE_ACK[:2], MSG_COMPLETION, CMD_STATUS_ENQUIRY, CMD_END_OF_DAY}
)


def redacted_hex(raw: bytes) -> str:
    """Return a hex dump safe for DEBUG logs: nothing after a card-data tag."""
    header = 5 if len(raw) > 2 and raw[2] == 0xFF else 3
    command = raw[:2]
    if command in _SAFE_WITHOUT_BMPS or raw[:1] == bytes((REJECT_CLASS,)):
        return raw.hex(" ")
    if command not in _BMP_OFFSETS:
        return _masked(raw, min(header, len(raw)))
    start = header + _BMP_OFFSETS[command]
    try:
        for offset, bmp in walk_bmps(raw[start:]):
            if bmp.tag in SENSITIVE_BMPS:
                return _masked(raw, start + offset + 1)
    except ZvtParseError as err:
        return _masked(raw, start + (err.offset or 0))
    return raw.hex(" ")


def _masked(raw: bytes, keep: int) -> str:
    shown = raw[:keep].hex(" ")
    hidden = len(raw) - keep
    return f"{shown} <{hidden} bytes masked>" if hidden else shown


# Builders for what a terminal sends; used by the simulator and golden tests.


def encode_status_info(info: StatusInfo) -> bytes:
    """Build 04 0F status information from its fields."""
    parts: list[bytes] = []
    if info.result_code is not None:
        parts.append(encode_bmp(0x27, bytes((info.result_code,))))
    if info.amount_minor is not None:
        parts.append(encode_bmp(0x04, bcd_encode(info.amount_minor, 6)))
    parts += _status_optional_parts(info)
    return encode_apdu(MSG_STATUS_INFO, b"".join(parts))


def _status_optional_parts(info: StatusInfo) -> list[bytes]:
    parts = []
    if info.trace is not None:
        parts.append(encode_bmp(0x0B, bcd_encode(info.trace, 3)))
    if info.time_hhmmss is not None:
        parts.append(encode_bmp(0x0C, bytes.fromhex(info.time_hhmmss)))
    if info.date_mmdd is not None:
        parts.append(encode_bmp(0x0D, bytes.fromhex(info.date_mmdd)))
    if info.masked_pan is not None:
        parts.append(encode_bmp(0x22, _pan_bcd(info.masked_pan)))
    if info.terminal_id is not None:
        parts.append(encode_bmp(0x29, bytes.fromhex(info.terminal_id)))
    if info.auth_code is not None:
        parts.append(encode_bmp(0x3B, info.auth_code.encode().ljust(8, b"\0")))
    if info.currency_code is not None:
        parts.append(encode_bmp(0x49, bcd_encode(info.currency_code, 2)))
    if info.totals is not None:
        parts.append(encode_bmp(0x60, encode_totals(info.totals)))
    if info.receipt_no is not None:
        parts.append(encode_bmp(0x87, bcd_encode(info.receipt_no, 2)))
    if info.card_type is not None:
        parts.append(encode_bmp(0x8A, bytes((info.card_type,))))
    if info.card_name is not None:
        parts.append(encode_bmp(0x8B, info.card_name.encode("ascii") + b"\0"))
    return parts


def _pan_bcd(masked: str) -> bytes:
    nibbles = masked.replace("*", "E")
    return bytes.fromhex(nibbles + "F" * (len(nibbles) % 2))


def _display_tlv(text: str, encoding: str) -> bytes:
    lines = b"".join(encode_tlv(0x07, ln.encode(encoding)) for ln in text.split("\n"))
    return encode_bmp(0x06, encode_tlv(0x24, lines))


def encode_intermediate(
    code: int, text: str | None = None, timeout_s: int = 0, encoding: str = "cp437"
) -> bytes:
    """Build 04 FF intermediate status, with display text if given."""
    data = bytes((code,))
    if text is not None:
        data += bytes((timeout_s,)) + _display_tlv(text, encoding)
    return encode_apdu(MSG_INTERMEDIATE, data)


def encode_completion(terminal_status: int | None = None) -> bytes:
    """Build 06 0F completion, optionally with a terminal status byte."""
    data = b"" if terminal_status is None else bytes((terminal_status,))
    return encode_apdu(MSG_COMPLETION, data)


def encode_abort(result_code: int) -> bytes:
    """Build 06 1E abort with a result code."""
    return encode_apdu(MSG_ABORT, bytes((result_code,)))


def encode_print_line(text: str, attribute: int = 0, encoding: str = "cp437") -> bytes:
    """Build 06 D1 print line."""
    return encode_apdu(MSG_PRINT_LINE, bytes((attribute,)) + text.encode(encoding))


def encode_text_block(
    lines: list[str], receipt_type: int, encoding: str = "cp437"
) -> bytes:
    """Build 06 D3 text block with a receipt type and the given lines."""
    body = b"".join(encode_tlv(0x07, line.encode(encoding)) for line in lines)
    tlv = encode_tlv(0x1F07, bytes((receipt_type,))) + encode_tlv(0x25, body)
    return encode_apdu(MSG_TEXT_BLOCK, encode_bmp(0x06, tlv))
