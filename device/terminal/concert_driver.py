"""Concert V2 terminal driver over a serial link, behind the ``Terminal`` interface.

A payment counts as approved only after the terminal's own reply message has
been read and its status field says performed; the ACK of the request only
means the terminal received the amount.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

import serial

from device.terminal import concert as c
from device.terminal.base import (
    EndOfDayResult,
    LinkDown,
    NotSupported,
    PaymentResult,
    PaymentStatus,
    PromptCallback,
    ProtocolError,
    Terminal,
    TerminalState,
    currency_numeric,
)
from device.terminal.link import LinkSettings, SerialLink
from device.terminal.worker import TerminalWorker

logger = logging.getLogger(__name__)

# Concert V2 session timing: answer to ENQ, to a frame, resends.
ENQ_ACK_TIMEOUT_S = 3.0
FRAME_ACK_TIMEOUT_S = 3.0
MAX_RESENDS = 3
# Concert sends no intermediate status: the whole customer interaction
# (card, PIN, host) happens before the reply, so the wait is long.
REPLY_TIMEOUT_S = 180.0
EOT_TIMEOUT_S = 1.0
ABORT_WAIT_S = 60.0
REOPEN_S = 5.0


def concert_link(port: str, baudrate: int = 9600) -> LinkSettings:
    """Return Concert line settings: 7 data bits, even parity, 1 stop bit."""
    return LinkSettings(
        port, baudrate, serial.SEVENBITS, serial.PARITY_EVEN, serial.STOPBITS_ONE
    )


@dataclass(frozen=True, slots=True)
class ConcertTimeouts:
    """Timeouts of a Concert session, shrinkable for tests."""

    enq_ack_s: float = ENQ_ACK_TIMEOUT_S
    frame_ack_s: float = FRAME_ACK_TIMEOUT_S
    reply_s: float = REPLY_TIMEOUT_S
    abort_wait_s: float = ABORT_WAIT_S
    reopen_s: float = REOPEN_S


@dataclass(frozen=True, slots=True)
class ConcertSettings:
    """How to reach a Concert terminal."""

    link: LinkSettings
    pos_number: str = "01"
    currency: str = "EUR"
    timeouts: ConcertTimeouts = field(default_factory=ConcertTimeouts)


class _Session:
    """The blocking Concert dialogue; lives on the worker thread only."""

    def __init__(self, settings: ConcertSettings) -> None:
        self.settings = settings
        self.link = SerialLink(settings.link)
        self._decoder = c.ConcertDecoder()
        self._pending: deque[c.ConcertEvent] = deque()

    def ensure_open(self) -> None:
        """Open the port, retrying while an adapter re-enumerates."""
        if self.link.open_within(self.settings.timeouts.reopen_s):
            self._decoder = c.ConcertDecoder()
            self._pending.clear()

    def transact(self, request: c.PaymentRequest) -> c.PaymentReply:
        """Send a request and read the terminal's reply."""
        self.ensure_open()
        self.send(c.encode_request(request))
        try:
            body = self.receive(self.settings.timeouts.reply_s)
        except LinkDown as err:
            raise LinkDown(str(err), command_sent=True) from err
        try:
            return c.decode_reply(body)
        except c.ConcertParseError as err:
            raise ProtocolError(f"unreadable terminal reply: {err}") from err

    def probe(self) -> bool:
        """Return True if the terminal answers ENQ (then close with EOT)."""
        self.ensure_open()
        self.link.write(bytes((c.ENQ,)))
        answered = self._wait_control(self.settings.timeouts.enq_ack_s) == c.ACK
        self.link.write(bytes((c.EOT,)))
        return answered

    def send(self, body: bytes) -> None:
        """ENQ/ACK, then the frame until ACKed, then EOT."""
        if not self._handshake():
            raise LinkDown("terminal did not answer ENQ", command_sent=False)
        frame = c.encode_frame(body)
        for _attempt in range(1 + MAX_RESENDS):
            self.link.write(frame)
            answer = self._wait_control(self.settings.timeouts.frame_ack_s)
            if answer == c.ACK:
                self.link.write(bytes((c.EOT,)))
                return
        raise LinkDown("terminal did not acknowledge the request", command_sent=True)

    def _handshake(self) -> bool:
        for _attempt in range(1 + MAX_RESENDS):
            self.link.write(bytes((c.ENQ,)))
            if self._wait_control(self.settings.timeouts.enq_ack_s) == c.ACK:
                return True
        return False

    def receive(self, timeout_s: float) -> bytes:
        """Wait for the terminal's ENQ, ACK it, read one message, await EOT."""
        deadline = time.monotonic() + timeout_s
        while (event := self._next(deadline)) is not None:
            if isinstance(event, c.Control) and event.byte == c.ENQ:
                self.link.write(bytes((c.ACK,)))
            elif isinstance(event, c.BadFrame):
                self.link.write(bytes((c.NAK,)))
            elif isinstance(event, c.Message):
                self.link.write(bytes((c.ACK,)))
                self._wait_control(EOT_TIMEOUT_S)
                return event.body
        raise LinkDown("terminal sent no reply", command_sent=True)

    def _wait_control(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while (event := self._next(deadline)) is not None:
            if isinstance(event, c.Control):
                return event.byte
        return None

    def _next(self, deadline: float) -> c.ConcertEvent | None:
        while not self._pending:
            if time.monotonic() >= deadline:
                return None
            self._pending.extend(self._decoder.feed(self.link.read()))
        return self._pending.popleft()


class ConcertTerminal(Terminal):
    """An Ingenico Telium terminal speaking Concert V2."""

    def __init__(self, settings: ConcertSettings) -> None:
        self._settings = settings
        self._session = _Session(settings)
        self._worker = TerminalWorker("concert-terminal")

    async def authorise(
        self,
        amount_minor: int,
        currency: str,
        ref: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Take a card payment; approved only on the terminal's reply."""
        logger.info("authorisation %s for %d minor units", ref, amount_minor)
        return await self._payment(amount_minor, currency, c.TransactionType.DEBIT)

    async def refund(
        self,
        amount_minor: int,
        currency: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Credit ``amount_minor`` to a card."""
        return await self._payment(amount_minor, currency, c.TransactionType.CREDIT)

    async def reversal(
        self, receipt_no: int, on_prompt: PromptCallback | None = None
    ) -> PaymentResult:
        """Concert V2 cancels by amount, not by receipt number."""
        raise NotSupported("Concert V2 has no reversal by receipt number")

    async def abort(self) -> None:
        """Wait for the cashier to cancel on the terminal; V2 has no abort."""
        if self._worker.busy:
            logger.info("Concert: cancel on the terminal keypad, waiting")
            await self._worker.wait_idle(self._settings.timeouts.abort_wait_s)

    async def status(self) -> TerminalState:
        """Check that the terminal answers ENQ."""
        if self._worker.busy:
            return TerminalState(False, message="busy with a transaction")
        ready = await self._worker.call(self._session.probe)
        return TerminalState(ready, message="ready" if ready else "no answer")

    async def end_of_day(self) -> EndOfDayResult:
        """Concert V2 has no end-of-day command; the terminal closes itself."""
        raise NotSupported("Concert V2 has no end-of-day command")

    async def last_transaction(self) -> PaymentResult:
        """Concert V2 cannot repeat its last result; a person must check."""
        raise NotSupported("Concert V2 has no last-transaction enquiry")

    async def close(self) -> None:
        """Close the port and stop the worker thread."""
        await self._worker.shutdown(self._session.link.close)

    async def _payment(
        self, amount_minor: int, currency: str, kind: c.TransactionType
    ) -> PaymentResult:
        request = c.PaymentRequest(
            amount_minor,
            f"{currency_numeric(currency):03d}",
            kind,
            self._settings.pos_number,
        )
        try:
            reply = await self._worker.call(self._transact, request)
        except LinkDown as err:
            if not err.command_sent:
                raise
            return PaymentResult(
                PaymentStatus.UNKNOWN, amount_minor, currency, message=str(err)
            )
        return _result(reply, request, currency)

    def _transact(self, request: c.PaymentRequest) -> c.PaymentReply:
        try:
            return self._session.transact(request)
        except LinkDown:
            self._session.link.close()
            raise


def _result(
    reply: c.PaymentReply, request: c.PaymentRequest, currency: str
) -> PaymentResult:
    if reply.approved and reply.amount_minor != request.amount_minor:
        logger.warning("terminal approved a different amount than requested")
        return PaymentResult(
            PaymentStatus.UNKNOWN,
            reply.amount_minor,
            currency,
            message="terminal booked a different amount",
        )
    status = PaymentStatus.APPROVED if reply.approved else PaymentStatus.DECLINED
    message = "approved" if reply.approved else f"refused (status {reply.status})"
    return PaymentResult(status, reply.amount_minor, currency, message=message)
