"""ZVT terminal driver over a serial link, behind the ``Terminal`` interface.

The whole dialogue of one command runs on the driver's own worker thread
(PA00P016 serial transport: each frame answered with ACK/NAK, each terminal
message answered with ``80 00 00``); the async methods only hand work to that
thread and deliver prompts back on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from device.terminal import zvt_apdu as z
from device.terminal.base import (
    CURRENCY_ALPHA,
    BrandTotal,
    CommandRejected,
    EndOfDayResult,
    LinkDown,
    PaymentResult,
    PaymentStatus,
    Prompt,
    PromptCallback,
    ProtocolError,
    Terminal,
    TerminalBusy,
    TerminalState,
    currency_numeric,
)
from device.terminal.link import LinkSettings, SerialLink
from device.terminal.worker import TerminalWorker, threadsafe
from device.terminal.zvt_frame import (
    ACK_BYTE,
    NAK_BYTE,
    AckReceived,
    ApduReceived,
    BadFrame,
    FrameDecoder,
    FrameEvent,
    NakReceived,
    encode_frame,
)

logger = logging.getLogger(__name__)

# PA00P016 serial transport: wait for ACK/NAK after a frame, resend 3 times.
ACK_TIMEOUT_S = 5.0
MAX_RESENDS = 3
# How long the terminal may take to accept a command with 80 00 00.
COMMAND_ACCEPT_TIMEOUT_S = 10.0
# Silence allowed between terminal messages; each 04 FF restarts it.
MESSAGE_TIMEOUT_S = 90.0
# How long abort() waits for the terminal to end the transaction.
ABORT_WAIT_S = 60.0
# How long to keep trying to reopen a vanished port (USB adapter re-enumerating).
REOPEN_S = 5.0

# ZVT registration config byte (PA00P015 06 00): ECR prints payment and admin
# receipts (02, 04), PT sends intermediate status (08), ECR controls payment
# and admin functions (10, 20), receipts come as 06 D3 text blocks (80).
DEFAULT_CONFIG_BYTE = 0xBE
# 84 xx codes that mean "not now" rather than "never".
BUSY_REJECT_CODES = frozenset({z.RESULT_PLEASE_WAIT, 0xA0, 0x83})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ZvtTimeouts:
    """Timeouts of the ZVT dialogue, shrinkable for tests."""

    ack_s: float = ACK_TIMEOUT_S
    accept_s: float = COMMAND_ACCEPT_TIMEOUT_S
    message_s: float = MESSAGE_TIMEOUT_S
    abort_wait_s: float = ABORT_WAIT_S
    reopen_s: float = REOPEN_S


@dataclass(frozen=True, slots=True)
class ZvtSettings:
    """How to reach and register with a ZVT terminal."""

    link: LinkSettings
    password: str = "000000"
    currency: str = "EUR"
    config_byte: int = DEFAULT_CONFIG_BYTE
    text_encoding: str = z.DEFAULT_TEXT_ENCODING
    timeouts: ZvtTimeouts = field(default_factory=ZvtTimeouts)


@dataclass(slots=True)
class _Outcome:
    """Everything the terminal said during one command."""

    status: z.StatusInfo | None = None
    completion: z.Completion | None = None
    abort: z.AbortMessage | None = None
    lines: list[str] = field(default_factory=list)
    unreadable: bool = False


class _Session:
    """The blocking ZVT dialogue; lives on the worker thread only."""

    def __init__(self, settings: ZvtSettings) -> None:
        self.settings = settings
        self.link = SerialLink(settings.link)
        self.abort_requested = threading.Event()
        self._decoder = FrameDecoder()
        self._pending: deque[FrameEvent] = deque()

    def ensure_open(self) -> None:
        """Open the port and register with the terminal after each (re)open."""
        if self.link.open_within(self.settings.timeouts.reopen_s):
            self._decoder = FrameDecoder()
            self._pending.clear()
            try:
                self.run(self._registration(), None)
            except LinkDown:
                self.link.close()
                raise

    def _registration(self) -> bytes:
        s = self.settings
        return z.registration(s.password, s.config_byte, currency_numeric(s.currency))

    def run(self, command: bytes, on_prompt: PromptCallback | None) -> _Outcome:
        """Send ``command`` and follow the terminal until it hands back control."""
        self.abort_requested.clear()
        self.send(command, sent_before=False)
        try:
            return self._follow(on_prompt)
        except LinkDown as err:
            raise LinkDown(str(err), command_sent=True) from err

    def _follow(self, on_prompt: PromptCallback | None) -> _Outcome:
        outcome = _Outcome()
        first = self._receive_message(self.settings.timeouts.accept_s, outcome)
        if isinstance(first, z.Reject):
            self._raise_reject(first.code)
        if isinstance(first, z.PositiveAck):
            first = None
        while not self._handle(first, outcome, on_prompt):
            first = self._receive_message(self.settings.timeouts.message_s, outcome)
        return outcome

    def _raise_reject(self, code: int) -> None:
        text = z.RESULT_TEXTS.get(code, f"code {code:02X}")
        if code in BUSY_REJECT_CODES:
            raise TerminalBusy(f"terminal busy: {text}")
        raise CommandRejected(f"terminal rejected the command: {text}", code)

    def _handle(
        self,
        message: z.TerminalMessage | None,
        outcome: _Outcome,
        on_prompt: PromptCallback | None,
    ) -> bool:
        """Record one terminal message; return True when control came back."""
        if isinstance(message, z.IntermediateStatus) and on_prompt is not None:
            on_prompt(Prompt(message.prompt, message.code))
        elif isinstance(message, z.StatusInfo):
            outcome.status = message
        elif isinstance(message, z.PrintLine):
            outcome.lines.append(message.text)
        elif isinstance(message, z.TextBlock):
            outcome.lines.extend(message.lines)
        elif isinstance(message, z.Completion):
            outcome.completion = message
            return True
        elif isinstance(message, z.AbortMessage):
            outcome.abort = message
            return True
        return False

    def _receive_message(
        self, timeout_s: float, outcome: _Outcome
    ) -> z.TerminalMessage | None:
        """Receive one APDU, acknowledge it, decode it (None if unreadable)."""
        raw = self.receive(timeout_s)
        logger.debug("zvt <- %s", z.redacted_hex(raw))
        try:
            message = z.decode_message(raw, self.settings.text_encoding)
        except z.ZvtParseError as err:
            logger.warning("unreadable terminal message: %s", err)
            outcome.unreadable = True
            message = None
        if not isinstance(message, z.PositiveAck | z.Reject):
            self.send(z.POSITIVE_ACK, sent_before=True)
        return message

    def send(self, apdu: bytes, sent_before: bool) -> None:
        """Write a frame until the terminal ACKs it, resending on NAK/silence."""
        logger.debug("zvt -> %s", z.redacted_hex(apdu))
        frame = encode_frame(apdu)
        reached = written = sent_before
        try:
            for _attempt in range(1 + MAX_RESENDS):
                self.link.write(frame)
                written = True
                answer = self._wait_ack(self.settings.timeouts.ack_s)
                if isinstance(answer, AckReceived):
                    return
                reached = reached or answer is None  # silence: maybe it got there
        except LinkDown as err:
            raise LinkDown(str(err), command_sent=written) from err
        raise LinkDown("terminal did not acknowledge the frame", command_sent=reached)

    def _wait_ack(self, timeout_s: float) -> AckReceived | NakReceived | None:
        deadline = time.monotonic() + timeout_s
        held: list[FrameEvent] = []
        try:
            while (event := self._next_event(deadline)) is not None:
                if isinstance(event, AckReceived | NakReceived):
                    return event
                held.append(event)  # a frame that overtook the ACK
            return None
        finally:
            self._pending.extendleft(reversed(held))

    def receive(self, timeout_s: float) -> bytes:
        """Return the next valid APDU (already ACKed at transport level)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._maybe_send_abort()
            event = self._next_event(min(deadline, time.monotonic() + 0.2))
            if isinstance(event, ApduReceived):
                return event.apdu
            if event is None and time.monotonic() >= deadline:
                raise LinkDown("terminal went silent", command_sent=True)

    def _maybe_send_abort(self) -> None:
        if self.abort_requested.is_set() and self._decoder.idle and not self._pending:
            self.abort_requested.clear()
            logger.info("sending abort to the terminal")
            self.send(z.abort_command(), sent_before=True)

    def _next_event(self, deadline: float) -> FrameEvent | None:
        while not self._pending:
            if time.monotonic() >= deadline:
                return None
            for event in self._decoder.feed(self.link.read()):
                self._answer(event)
        return self._pending.popleft()

    def _answer(self, event: FrameEvent) -> None:
        """ACK a good frame, NAK a corrupted one, as soon as it is complete."""
        if isinstance(event, ApduReceived):
            self.link.write(ACK_BYTE)
        elif isinstance(event, BadFrame):
            logger.debug("zvt: frame with bad CRC, sending NAK")
            self.link.write(NAK_BYTE)
            return
        self._pending.append(event)


class ZvtTerminal(Terminal):
    """A ZVT terminal on a serial port (or a pty)."""

    def __init__(self, settings: ZvtSettings) -> None:
        self._settings = settings
        self._session = _Session(settings)
        self._worker = TerminalWorker("zvt-terminal")

    async def authorise(
        self,
        amount_minor: int,
        currency: str,
        ref: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Take a card payment of ``amount_minor``; see ``Terminal``."""
        logger.info("authorisation %s for %d minor units", ref, amount_minor)
        command = z.authorisation(amount_minor, currency_numeric(currency))
        return await self._payment(command, amount_minor, currency, on_prompt)

    async def refund(
        self,
        amount_minor: int,
        currency: str,
        on_prompt: PromptCallback | None = None,
    ) -> PaymentResult:
        """Refund ``amount_minor`` to a card."""
        code = currency_numeric(currency)
        command = z.refund(self._settings.password, amount_minor, code)
        return await self._payment(command, amount_minor, currency, on_prompt)

    async def reversal(
        self, receipt_no: int, on_prompt: PromptCallback | None = None
    ) -> PaymentResult:
        """Reverse the payment with ``receipt_no``."""
        command = z.reversal(self._settings.password, receipt_no)
        return await self._payment(command, None, self._settings.currency, on_prompt)

    async def last_transaction(self) -> PaymentResult:
        """Ask for the last transaction again (06 20 repeat receipt)."""
        command = z.repeat_receipt(self._settings.password)
        outcome = await self._call(self._session.run, command, None)
        return _payment_result(outcome, None, self._settings.currency)

    async def status(self) -> TerminalState:
        """Run a status enquiry (05 01); busy while a transaction runs."""
        if self._worker.busy:
            return TerminalState(False, message="busy with a transaction")
        command = z.status_enquiry(self._settings.password)
        try:
            outcome = await self._call(self._session.run, command, None)
        except TerminalBusy as err:
            return TerminalState(False, message=str(err))
        return _terminal_state(outcome)

    async def end_of_day(self) -> EndOfDayResult:
        """Close the batch (06 50) and return its totals per brand."""
        command = z.end_of_day(self._settings.password)
        outcome = await self._call(self._session.run, command, None)
        return _end_of_day_result(outcome)

    async def abort(self) -> None:
        """Abort the transaction in flight and wait until the terminal ends it."""
        if not self._worker.busy:
            return
        self._session.abort_requested.set()
        if not await self._worker.wait_idle(self._settings.timeouts.abort_wait_s):
            logger.warning("terminal did not end the transaction after abort")

    async def close(self) -> None:
        """Close the port and stop the worker thread."""
        await self._worker.shutdown(self._session.link.close)

    async def _payment(
        self,
        command: bytes,
        amount_minor: int | None,
        currency: str,
        on_prompt: PromptCallback | None,
    ) -> PaymentResult:
        try:
            outcome = await self._call(
                self._session.run, command, threadsafe(on_prompt)
            )
        except LinkDown as err:
            if not err.command_sent:
                raise
            logger.warning("link lost during a payment: outcome unknown")
            return PaymentResult(
                PaymentStatus.UNKNOWN, amount_minor, currency, message=str(err)
            )
        return _payment_result(outcome, amount_minor, currency)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await self._worker.call(self._opened, fn, *args)

    def _opened(self, fn: Callable[..., T], *args: object) -> T:
        self._session.ensure_open()
        try:
            return fn(*args)
        except LinkDown:
            self._session.link.close()  # reopen (and register) next time
            raise


def _status_of(code: int | None) -> PaymentStatus:
    if code == z.RESULT_SUCCESS:
        return PaymentStatus.APPROVED
    if code == z.RESULT_ABORTED:
        return PaymentStatus.ABORTED
    return PaymentStatus.DECLINED


def _payment_result(
    outcome: _Outcome, amount_minor: int | None, currency: str
) -> PaymentResult:
    lines = tuple(outcome.lines)
    if outcome.abort is not None:
        code = outcome.abort.result_code
        message = outcome.abort.text or z.RESULT_TEXTS.get(code, f"code {code:02X}")
        status = _status_of(code) if code else PaymentStatus.DECLINED
        return PaymentResult(
            status,
            amount_minor,
            currency,
            result_code=code,
            message=message,
            print_lines=lines,
        )
    info = outcome.status
    if info is None or outcome.unreadable or info.result_code is None:
        return PaymentResult(
            PaymentStatus.UNKNOWN,
            amount_minor,
            currency,
            message="terminal sent no readable result",
            print_lines=lines,
        )
    return _from_status_info(info, amount_minor, currency, lines)


def _from_status_info(
    info: z.StatusInfo,
    amount_minor: int | None,
    currency: str,
    lines: tuple[str, ...],
) -> PaymentResult:
    code = info.result_code
    booked_currency = CURRENCY_ALPHA.get(info.currency_code or 0, currency)
    text = info.text or z.RESULT_TEXTS.get(code or 0, f"code {code:02X}")
    return PaymentResult(
        _status_of(code),
        info.amount_minor if info.amount_minor is not None else amount_minor,
        booked_currency,
        masked_pan=info.masked_pan,
        brand=info.brand,
        auth_code=info.auth_code,
        trace=info.trace,
        receipt_no=info.receipt_no,
        terminal_id=info.terminal_id,
        result_code=code,
        message=text,
        print_lines=lines,
        booked_at=_booked_at(info),
    )


def _booked_at(info: z.StatusInfo) -> str | None:
    """Return the terminal's "MMDDhhmmss" of a transaction, if it sent both."""
    if info.date_mmdd is None or info.time_hhmmss is None:
        return None
    return info.date_mmdd + info.time_hhmmss


def _terminal_state(outcome: _Outcome) -> TerminalState:
    done = outcome.completion
    if done is None:
        raise ProtocolError("status enquiry ended without completion")
    code = done.terminal_status
    ready = code in (None, 0)
    message = "ready" if ready else z.RESULT_TEXTS.get(code or 0, f"status {code:02X}")
    return TerminalState(ready, code, message, done.sw_version)


def _end_of_day_result(outcome: _Outcome) -> EndOfDayResult:
    lines = tuple(outcome.lines)
    info = outcome.status
    if outcome.abort is not None or info is None:
        code = outcome.abort.result_code if outcome.abort else None
        message = z.RESULT_TEXTS.get(code or 0, "no totals") if code else "no totals"
        return EndOfDayResult(
            PaymentStatus.DECLINED, print_lines=lines, message=message
        )
    totals = info.totals.brands if info.totals else ()
    return EndOfDayResult(
        _status_of(info.result_code),
        info.amount_minor,
        tuple(BrandTotal(t.brand, t.count, t.amount_minor) for t in totals),
        lines,
        z.RESULT_TEXTS.get(info.result_code or 0, ""),
    )
