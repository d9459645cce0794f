"""The one card-terminal interface the daemon uses, whatever the protocol.

Results are values, not exceptions: a declined card is a ``PaymentResult``
with status DECLINED. Exceptions are grouped by what the caller does next:
``LinkDown`` (the terminal is unreachable; a payment in flight is UNKNOWN),
``TerminalBusy`` (try again when it is idle), ``CommandRejected`` and
``ProtocolError`` (ask a person), ``NotSupported`` (use another route).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger(__name__)


class PaymentStatus(Enum):
    """Outcome of a payment, refund or reversal as far as the terminal said."""

    APPROVED = "approved"
    DECLINED = "declined"
    ABORTED = "aborted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Prompt:
    """An intermediate status to show the cashier ("insert card")."""

    text: str
    code: int | None = None


PromptCallback = Callable[[Prompt], None]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What the terminal booked; only data that may be stored."""

    status: PaymentStatus
    amount_minor: int | None = None
    currency: str | None = None
    masked_pan: str | None = None
    brand: str | None = None
    auth_code: str | None = None
    trace: int | None = None
    receipt_no: int | None = None
    terminal_id: str | None = None
    result_code: int | None = None
    message: str = ""
    print_lines: tuple[str, ...] = ()
    booked_at: str | None = None  # terminal's local "MMDDhhmmss", when it says


@dataclass(frozen=True, slots=True)
class TerminalState:
    """Answer to a status enquiry."""

    ready: bool
    code: int | None = None
    message: str = ""
    software: str | None = None


@dataclass(frozen=True, slots=True)
class BrandTotal:
    """Count and sum of one card brand in an end-of-day batch."""

    brand: str
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class EndOfDayResult:
    """Totals the terminal reports when it closes its batch."""

    status: PaymentStatus
    total_minor: int | None = None
    totals: tuple[BrandTotal, ...] = ()
    print_lines: tuple[str, ...] = ()
    message: str = ""


class TerminalError(Exception):
    """Base of every card-terminal error."""


class LinkDown(TerminalError, ConnectionError):
    """Raised when the port is gone or the terminal does not answer.

    ``command_sent`` says whether any byte of the command left the port;
    if it did, a payment's outcome is UNKNOWN and must be resolved.
    """

    def __init__(self, message: str, command_sent: bool = False) -> None:
        super().__init__(message)
        self.command_sent = command_sent


class TerminalBusy(TerminalError):
    """Raised when the terminal or this driver is busy with a transaction."""


class CommandRejected(TerminalError):
    """Raised when the terminal refused a command before starting it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(TerminalError):
    """Raised when the terminal sent something this driver cannot read."""


class NotSupported(TerminalError):
    """Raised when the terminal's protocol has no such function."""


class Terminal(abc.ABC):
    """A card terminal driven over a serial link, one transaction at a time.

    A payment method never raises for a link lost after the command was sent:
    it returns ``PaymentStatus.UNKNOWN`` instead, and the caller resolves it
    with ``last_transaction()`` or a person. ``LinkDown`` from a payment
    method therefore means nothing was sent.
    """

    @abc.abstractmethod
    async def authorise(
        self,
        amount_minor: int,
        currency: str,
        ref: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Take a card payment; ``ref`` ties log lines to the payment attempt."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Ask the terminal to abort the transaction in flight and wait for it."""

    @abc.abstractmethod
    async def status(self) -> TerminalState:
        """Ask whether the terminal is ready."""

    @abc.abstractmethod
    async def reversal(
        self, receipt_no: int, on_prompt: PromptCallback | None = None
    ) -> PaymentResult:
        """Reverse the payment with ``receipt_no`` from the current batch."""

    @abc.abstractmethod
    async def refund(
        self,
        amount_minor: int,
        currency: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Refund an amount to a card."""

    @abc.abstractmethod
    async def end_of_day(self) -> EndOfDayResult:
        """Close the terminal's batch and return its totals per brand."""

    @abc.abstractmethod
    async def last_transaction(self) -> PaymentResult:
        """Return the terminal's record of its last transaction."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the port; the driver can be used again afterwards."""


# ISO 4217 numeric codes for the currencies a stall may run in.
CURRENCY_NUMERIC = {
    "EUR": 978,
    "CHF": 756,
    "GBP": 826,
    "USD": 840,
    "DKK": 208,
    "SEK": 752,
    "NOK": 578,
    "PLN": 985,
    "CZK": 203,
    "HUF": 348,
}
CURRENCY_ALPHA = {num: alpha for alpha, num in CURRENCY_NUMERIC.items()}


def currency_numeric(currency: str) -> int:
    """Return the ISO 4217 numeric code of ``currency`` ("EUR" -> 978)."""
    try:
        return CURRENCY_NUMERIC[currency.upper()]
    except KeyError as err:
        raise ValueError(f"unsupported currency {currency!r}") from err
