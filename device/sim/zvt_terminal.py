"""A simulated ZVT card terminal on a pseudo-terminal, speaking the real wire.

The simulator owns the master side of a pty and keeps a symlink (like
``/dev/serial/by-id/...``) pointing at the slave; drivers open the symlink
with pyserial. ``replug()`` moves it to a fresh pty, as when a USB adapter
comes back under another name. Behaviour is scripted through ``ZvtSimBehaviour``
and may be changed between transactions.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from device.terminal import zvt_apdu as z
from device.terminal.zvt_frame import (
    ACK_BYTE,
    NAK_BYTE,
    AckReceived,
    ApduReceived,
    BadFrame,
    FrameDecoder,
    NakReceived,
    encode_frame,
)

logger = logging.getLogger(__name__)

SIM_ACK_TIMEOUT_S = 2.0
SIM_MAX_RESENDS = 3
SIM_BYTE_GAP_S = 0.001  # pause between bytes in byte-by-byte mode

# Amount rules (by the cents of the amount) for scripted outcomes.
CENTS_CARD_REFUSED = 13
CENTS_INSUFFICIENT_FUNDS = 51
CENTS_CUSTOMER_ABORT = 66
RESULT_CARD_REFUSED = 0x05
RESULT_INSUFFICIENT_FUNDS = 0x33  # issuer code 51 as reported by the host
RESULT_NO_SUCH_RECEIPT = 0xB5  # "reversal not possible": not in this batch
TERMINAL_ID = "29001006"


class _LinkGone(Exception):
    """The pty was dropped on purpose or the driver stopped answering."""


@dataclass
class ZvtSimBehaviour:
    """What the simulated terminal does; tests change it between steps."""

    step_delay_s: float = 0.02
    prompts: tuple[tuple[int, str], ...] = (
        (z.INTERMEDIATE_CODE_INSERT_CARD, "Karte einstecken"),
        (z.INTERMEDIATE_CODE_WATCH_PIN_PAD, "PIN eingeben"),
    )
    prompt_repeats: int = 1
    drop_link_after: str | None = None  # "command", "prompt", "status_info"
    silent_after: str | None = None  # same steps; stop answering instead
    nak_frames: int = 0  # NAK this many good frames from the driver
    corrupt_crc_frames: int = 0  # send this many frames with a broken CRC
    busy: bool = False  # reject commands with 84 9C
    byte_by_byte: bool = False
    coalesce_ack: bool = False  # ACK byte and the next frame in one write
    print_receipt: bool = True
    remember_last: bool = True  # answer 06 20 with the last transaction


@dataclass
class _Batch:
    transactions: list[z.StatusInfo] = field(default_factory=list)
    refunds: list[z.StatusInfo] = field(default_factory=list)
    next_receipt: int = 1
    next_trace: int = 1


class ZvtTerminalSim:
    """A ZVT terminal behind a pty, run on its own thread."""

    def __init__(self, link_path: Path, behaviour: ZvtSimBehaviour | None = None):
        self.link_path = link_path
        self.behaviour = behaviour or ZvtSimBehaviour()
        self.received: list[bytes] = []
        self.last: z.StatusInfo | None = None
        self._batch = _Batch()
        self._master = -1
        self._slave = -1
        self._decoder = FrameDecoder()
        self._events: deque[ApduReceived | AckReceived | NakReceived] = deque()
        self._held_ack = b""
        self._stop = threading.Event()
        self._silent = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the pty and start answering."""
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="zvt-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and remove the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pty()
        self.link_path.unlink(missing_ok=True)

    def replug(self) -> None:
        """Drop the current pty and offer a new one under the same link."""
        self._close_pty()
        self._open_pty()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self._decoder = FrameDecoder()
        self._events.clear()
        tmp = self.link_path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link_path)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                apdu = self._recv(0.1)
                if apdu is not None:
                    self._dispatch(apdu)
            except _LinkGone:
                logger.debug("zvt sim: link gone")
            except OSError:
                time.sleep(0.05)  # pty being replaced

    # --- wire ---

    def _write(self, data: bytes) -> None:
        data, self._held_ack = self._held_ack + data, b""
        if not self.behaviour.byte_by_byte:
            os.write(self._master, data)
            return
        for byte in data:
            os.write(self._master, bytes((byte,)))
            time.sleep(SIM_BYTE_GAP_S)

    def _pump(self, timeout_s: float) -> None:
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return
        for event in self._decoder.feed(os.read(self._master, 4096)):
            self._on_event(event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, BadFrame):
            self._write(NAK_BYTE)
        elif isinstance(event, ApduReceived):
            if self.behaviour.nak_frames > 0:
                self.behaviour.nak_frames -= 1
                self._write(NAK_BYTE)
                return
            if self.behaviour.coalesce_ack:
                self._held_ack += ACK_BYTE
            else:
                self._write(ACK_BYTE)
            self._events.append(event)
        elif isinstance(event, AckReceived | NakReceived):
            self._events.append(event)

    def _recv(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        while True:
            for i, event in enumerate(self._events):
                if isinstance(event, ApduReceived):
                    del self._events[i]
                    self.received.append(event.apdu)
                    return event.apdu
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                if self._held_ack:
                    self._write(b"")
                return None
            self._pump(min(remaining, 0.05))

    def _send(self, apdu: bytes) -> None:
        frame = encode_frame(apdu)
        for _attempt in range(1 + SIM_MAX_RESENDS):
            self._write(self._maybe_corrupt(frame))
            if self._await_ack():
                return
        raise _LinkGone("driver never acknowledged")

    def _maybe_corrupt(self, frame: bytes) -> bytes:
        if self.behaviour.corrupt_crc_frames <= 0:
            return frame
        self.behaviour.corrupt_crc_frames -= 1
        return frame[:-1] + bytes((frame[-1] ^ 0xFF,))

    def _await_ack(self) -> bool:
        deadline = time.monotonic() + SIM_ACK_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            for i, event in enumerate(self._events):
                if isinstance(event, AckReceived | NakReceived):
                    del self._events[i]
                    return isinstance(event, AckReceived)
            self._pump(0.05)
        return False

    def _send_and_wait_ecr_ack(self, apdu: bytes) -> bytes | None:
        """Send a message and return what the ECR answered (80 00 00 or other)."""
        self._send(apdu)
        return self._recv(SIM_ACK_TIMEOUT_S * 4)

    # --- behaviour ---

    def _dispatch(self, apdu: bytes) -> None:
        if apdu == z.POSITIVE_ACK:
            return  # a late 80 00 00 (e.g. after an abort crossed it) is no command
        try:
            command = z.decode_ecr_command(apdu)
        except z.ZvtParseError:
            self._send(z.reject(0x9A))  # ZVT protocol error
            return
        if self.behaviour.busy:
            self._send(z.reject(z.RESULT_PLEASE_WAIT))
            return
        handler = _HANDLERS.get(command.command)
        if handler is None:
            self._send(z.reject(0x83))  # function not possible
            return
        handler(self, command)

    def _checkpoint(self, step: str) -> None:
        if self.behaviour.drop_link_after == step:
            self.behaviour.drop_link_after = None
            self.replug()
            raise _LinkGone(step)
        if self.behaviour.silent_after == step:
            self.behaviour.silent_after = None
            self._silent.set()
            self._ignore_everything()
            raise _LinkGone(step)

    def _ignore_everything(self) -> None:
        """Read and drop all input, as a hung terminal does, until woken."""
        while self._silent.is_set() and not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if ready:
                os.read(self._master, 4096)
        self._decoder = FrameDecoder()
        self._events.clear()

    def wake(self) -> None:
        """End a silence started by ``silent_after``."""
        self._silent.clear()

    def _on_registration(self, command: z.EcrCommand) -> None:
        self._send(z.POSITIVE_ACK)
        self._send_and_wait_ecr_ack(z.encode_completion())

    def _on_status_enquiry(self, command: z.EcrCommand) -> None:
        self._send(z.POSITIVE_ACK)
        self._send_and_wait_ecr_ack(z.encode_completion(0x00))

    def _on_authorisation(self, command: z.EcrCommand) -> None:
        amount = command.amount_minor or 0
        self._send(z.POSITIVE_ACK)
        self._checkpoint("command")
        if self._prompts_aborted():
            return
        if amount % 100 == CENTS_CUSTOMER_ABORT:
            self._send_and_wait_ecr_ack(z.encode_abort(z.RESULT_ABORTED))
            return
        self._finish_payment(amount)

    def _prompts_aborted(self) -> bool:
        """Send the prompts; return True if the ECR aborted meanwhile."""
        b = self.behaviour
        for _ in range(b.prompt_repeats):
            for code, text in b.prompts:
                answer = self._send_and_wait_ecr_ack(z.encode_intermediate(code, text))
                self._checkpoint("prompt")
                if self._abort_arrived(answer) or self._abort_arrived(
                    self._recv(b.step_delay_s)
                ):
                    self._send_and_wait_ecr_ack(z.encode_abort(z.RESULT_ABORTED))
                    return True
        return False

    def _abort_arrived(self, apdu: bytes | None) -> bool:
        return apdu is not None and apdu[:2] == z.CMD_ABORT

    def _finish_payment(self, amount: int) -> None:
        info = self._book(amount)
        self._send_and_wait_ecr_ack(z.encode_status_info(info))
        self._checkpoint("status_info")
        if self.behaviour.print_receipt:
            self._send_and_wait_ecr_ack(self._receipt(info))
        self._send_and_wait_ecr_ack(z.encode_completion())

    def _book(self, amount: int, refund: bool | None = False) -> z.StatusInfo:
        """Book a payment, a refund (True) or a reversal (None) in the batch."""
        cents = amount % 100
        result = {
            CENTS_CARD_REFUSED: RESULT_CARD_REFUSED,
            CENTS_INSUFFICIENT_FUNDS: RESULT_INSUFFICIENT_FUNDS,
        }.get(cents, z.RESULT_SUCCESS)
        batch = self._batch
        info = z.StatusInfo(
            result_code=result,
            amount_minor=amount,
            currency_code=978,
            trace=batch.next_trace,
            receipt_no=batch.next_receipt if result == 0 else None,
            masked_pan="******1234" if result == 0 else None,
            card_type=0x0A,
            card_name="Visa",
            time_hhmmss=time.strftime("%H%M%S"),
            date_mmdd=time.strftime("%m%d"),
            terminal_id=TERMINAL_ID,
            auth_code=f"{batch.next_trace:06d}" if result == 0 else None,
        )
        batch.next_trace += 1
        if result == 0:
            batch.next_receipt += 1
            if refund is False:
                batch.transactions.append(info)
            elif refund:
                batch.refunds.append(info)
        self.last = info if self.behaviour.remember_last else None
        return info

    def _receipt(self, info: z.StatusInfo) -> bytes:
        amount = info.amount_minor or 0
        lines = [
            "** Kundenbeleg **",
            f"Terminal-ID: {TERMINAL_ID}",
            f"Beleg-Nr.: {info.receipt_no or 0:04d}",
            f"Betrag: EUR {amount // 100},{amount % 100:02d}",
            "Zahlung erfolgt" if info.result_code == 0 else "Abgelehnt",
        ]
        return z.encode_text_block(lines, z.RECEIPT_CUSTOMER)

    def _on_repeat_receipt(self, command: z.EcrCommand) -> None:
        self._send(z.POSITIVE_ACK)
        if self.last is None:
            self._send_and_wait_ecr_ack(z.encode_abort(0x83))
            return
        self._send_and_wait_ecr_ack(z.encode_status_info(self.last))
        self._send_and_wait_ecr_ack(z.encode_completion())

    def _on_refund(self, command: z.EcrCommand) -> None:
        """06 31: pay an amount back to a card; it counts against the batch."""
        amount = command.amount_minor or 0
        self._send(z.POSITIVE_ACK)
        self._checkpoint("command")
        if self._prompts_aborted():
            return
        info = self._book(amount, refund=True)
        self._finish(info)

    def _on_reversal(self, command: z.EcrCommand) -> None:
        """06 30: cancel a payment of this batch by its receipt number."""
        raw = command.field(0x87)
        receipt_no = z.bcd_decode(raw, "BMP 87") if raw else None
        self._send(z.POSITIVE_ACK)
        self._checkpoint("command")
        if self._prompts_aborted():  # terminals ask for the card here too
            return
        batch = self._batch
        original = next((t for t in batch.transactions
                         if t.receipt_no == receipt_no), None)
        if original is None:
            self._send_and_wait_ecr_ack(z.encode_abort(RESULT_NO_SUCH_RECEIPT))
            return
        batch.transactions.remove(original)
        info = self._book(original.amount_minor or 0, refund=None)
        self._finish(info)

    def _finish(self, info: z.StatusInfo) -> None:
        self._send_and_wait_ecr_ack(z.encode_status_info(info))
        self._checkpoint("status_info")
        self._send_and_wait_ecr_ack(z.encode_completion())

    def _on_end_of_day(self, command: z.EcrCommand) -> None:
        self._send(z.POSITIVE_ACK)
        batch = self._batch
        # Net per brand: payments count +1 and add, refunds count +1 and take away.
        total = sum(t.amount_minor or 0 for t in batch.transactions) - sum(
            t.amount_minor or 0 for t in batch.refunds)
        count = len(batch.transactions) + len(batch.refunds)
        visa = z.BrandTotal("Visa", count, total)
        first = batch.transactions[0].receipt_no if batch.transactions else 0
        totals = z.Totals(first or 0, max(batch.next_receipt - 1, 0), (visa,))
        info = z.StatusInfo(result_code=0, amount_minor=total, totals=totals)
        self._send_and_wait_ecr_ack(z.encode_status_info(info))
        self._send_and_wait_ecr_ack(z.encode_completion())
        self._batch = _Batch(next_receipt=batch.next_receipt)

    def _on_abort_when_idle(self, command: z.EcrCommand) -> None:
        """06 B0 with nothing to abort: acknowledge it."""
        self._send(z.POSITIVE_ACK)


_HANDLERS = {
    z.CMD_REGISTRATION: ZvtTerminalSim._on_registration,
    z.CMD_STATUS_ENQUIRY: ZvtTerminalSim._on_status_enquiry,
    z.CMD_AUTHORISATION: ZvtTerminalSim._on_authorisation,
    z.CMD_REPEAT_RECEIPT: ZvtTerminalSim._on_repeat_receipt,
    z.CMD_END_OF_DAY: ZvtTerminalSim._on_end_of_day,
    z.CMD_REFUND: ZvtTerminalSim._on_refund,
    z.CMD_REVERSAL: ZvtTerminalSim._on_reversal,
    z.CMD_ABORT: ZvtTerminalSim._on_abort_when_idle,
}
