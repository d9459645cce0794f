"""The ``[terminal]`` config section and the driver it selects.

A terminal is configured by its port path, best ``/dev/serial/by-id/...``:
that name survives the adapter coming back as another ``ttyUSBn``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from device.terminal import zvt
from device.terminal.base import CURRENCY_ALPHA, CURRENCY_NUMERIC, Terminal
from device.terminal.concert_driver import (
    ConcertSettings,
    ConcertTerminal,
    concert_link,
)
from device.terminal.link import LinkSettings
from device.terminal.zvt import (
    DEFAULT_CONFIG_BYTE,
    MESSAGE_TIMEOUT_S,
    ZvtSettings,
    ZvtTerminal,
    ZvtTimeouts,
)
from device.terminal.zvt_apdu import DEFAULT_TEXT_ENCODING

if TYPE_CHECKING:
    from daemon.money import Currency

logger = logging.getLogger(__name__)

PROTOCOLS = ("zvt", "concert", "none")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
TEXT_ENCODINGS = ("cp437", "cp850", "cp858", "cp1252", "latin-1", "utf-8")
KEEPALIVE_S = 30  # idle status enquiry: keeps the link up, notices a dead one


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """A checked ``[terminal]`` section."""

    protocol: str
    port: str
    baudrate: int = 9600
    name: str = "terminal-1"
    password: str = "000000"
    currency_code: int = 978
    config_byte: int = DEFAULT_CONFIG_BYTE
    text_encoding: str = DEFAULT_TEXT_ENCODING
    print_receipt: bool = True
    keepalive_s: int = KEEPALIVE_S
    response_timeout_s: int = int(MESSAGE_TIMEOUT_S)

    @property
    def currency(self) -> str:
        """Return the ISO 4217 alpha code of ``currency_code``."""
        return CURRENCY_ALPHA[self.currency_code]


def parse_terminal(table: Any, currency: Currency) -> TerminalConfig | None:
    """Check ``[terminal]``; None when it is absent or protocol is "none"."""
    from daemon.config import ConfigError, _Section  # config imports this lazily

    if table is None:
        return None
    sec = _Section("terminal", table)
    protocol = sec.choice("protocol", PROTOCOLS, "none")
    if protocol == "none":
        sec.check_unknown()
        return None
    port = sec.get("port", str)
    if not port.startswith("/"):
        raise ConfigError("terminal.port", "must be an absolute device path, "
                          "e.g. /dev/serial/by-id/usb-...")
    config = TerminalConfig(
        protocol=protocol, port=port,
        baudrate=_baudrate(sec),
        name=_name(sec),
        password=_password(sec),
        currency_code=_currency_code(sec, currency.code),
        config_byte=sec.int_range("config_byte", 0, 255, DEFAULT_CONFIG_BYTE),
        text_encoding=sec.choice("text_encoding", TEXT_ENCODINGS,
                                 DEFAULT_TEXT_ENCODING),
        print_receipt=sec.get("print_receipt", bool, True),
        keepalive_s=sec.int_range("keepalive_s", 1, 3600, KEEPALIVE_S),
        response_timeout_s=sec.int_range("response_timeout_s", 1, 600,
                                         int(MESSAGE_TIMEOUT_S)),
    )
    sec.check_unknown()
    return config


def _baudrate(sec: Any) -> int:
    from daemon.config import ConfigError

    value = sec.get("baudrate", int, 9600)
    if value not in BAUDRATES:
        raise ConfigError("terminal.baudrate",
                          f"must be one of {', '.join(map(str, BAUDRATES))}")
    return int(value)


def _name(sec: Any) -> str:
    from daemon.config import ConfigError

    value = sec.get("name", str, "terminal-1")
    allowed = all(c.isalnum() or c in "-_." for c in value)
    if not value or len(value) > 40 or not allowed:
        raise ConfigError("terminal.name", "must be 1-40 letters, digits, '-_.'")
    return str(value)


def _password(sec: Any) -> str:
    from daemon.config import ConfigError

    value = sec.get("password", str, "000000")
    if len(value) != 6 or not value.isascii() or not value.isdigit():
        raise ConfigError("terminal.password", "must be six digits, e.g. \"000000\"")
    return str(value)


def _currency_code(sec: Any, stall_currency: str) -> int:
    from daemon.config import ConfigError

    default = CURRENCY_NUMERIC.get(stall_currency, 978)
    value = sec.get("currency_code", int, default)
    if value not in CURRENCY_ALPHA:
        known = ", ".join(f"{n} ({a})" for n, a in sorted(CURRENCY_ALPHA.items()))
        raise ConfigError("terminal.currency_code", f"must be one of {known}")
    if CURRENCY_ALPHA[value] != stall_currency:
        raise ConfigError("terminal.currency_code",
                          f"is {CURRENCY_ALPHA[value]}, the stall sells in "
                          f"{stall_currency}")
    return int(value)


def build_driver(config: TerminalConfig) -> Terminal:
    """Return the driver the config names; it opens its port on first use."""
    if config.protocol == "concert":
        link = concert_link(config.port, config.baudrate)
        return ConcertTerminal(ConcertSettings(link, currency=config.currency))
    # Read the driver's constants now, not at import, so tests can shrink them.
    timeouts = ZvtTimeouts(ack_s=zvt.ACK_TIMEOUT_S,
                           accept_s=zvt.COMMAND_ACCEPT_TIMEOUT_S,
                           message_s=float(config.response_timeout_s),
                           abort_wait_s=zvt.ABORT_WAIT_S, reopen_s=zvt.REOPEN_S)
    settings = ZvtSettings(
        LinkSettings(config.port, config.baudrate), password=config.password,
        currency=config.currency, config_byte=config.config_byte,
        text_encoding=config.text_encoding, timeouts=timeouts)
    return ZvtTerminal(settings)
