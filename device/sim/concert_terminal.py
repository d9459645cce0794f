"""A simulated Concert V2 terminal on a pseudo-terminal, speaking the real wire.

Like the ZVT simulator it keeps a symlink to the slave side of its pty.
It approves by default, refuses amounts ending in 13 cents, and can NAK the
request, drop the link or go silent before its reply.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from device.terminal import concert as c

logger = logging.getLogger(__name__)

SIM_WAIT_S = 2.0
CENTS_REFUSED = 13


class _LinkGone(Exception):
    """The session ended without the other side (on purpose or not)."""


@dataclass
class ConcertSimBehaviour:
    """What the simulated terminal does; tests change it between steps."""

    customer_delay_s: float = 0.05
    nak_frames: int = 0
    drop_link_before_reply: bool = False
    silent_before_reply: bool = False


class ConcertTerminalSim:
    """A Concert terminal behind a pty, run on its own thread."""

    def __init__(self, link_path: Path, behaviour: ConcertSimBehaviour | None = None):
        self.link_path = link_path
        self.behaviour = behaviour or ConcertSimBehaviour()
        self.requests: list[c.PaymentRequest] = []
        self._master = self._slave = -1
        self._decoder = c.ConcertDecoder()
        self._events: deque[c.ConcertEvent] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the pty and start answering."""
        self._open_pty()
        self._thread = threading.Thread(target=self._serve, name="concert-sim")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and remove the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pty()
        self.link_path.unlink(missing_ok=True)

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._decoder = c.ConcertDecoder()
        self._events.clear()
        tmp = self.link_path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self._slave))
        tmp.replace(self.link_path)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except _LinkGone as gone:
                logger.debug("concert sim: %s", gone)
            except OSError:
                time.sleep(0.05)

    def _write(self, *data: int | bytes) -> None:
        out = b"".join(bytes((d,)) if isinstance(d, int) else d for d in data)
        os.write(self._master, out)

    def _next(self, timeout_s: float) -> c.ConcertEvent | None:
        deadline = time.monotonic() + timeout_s
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return None
            ready, _, _ = select.select([self._master], [], [], min(remaining, 0.05))
            if ready:
                self._events.extend(self._decoder.feed(os.read(self._master, 4096)))
        return self._events.popleft()

    def _session(self) -> None:
        event = self._next(0.1)
        if event != c.Control(c.ENQ):
            return
        if self.behaviour.silent_before_reply and self.requests:
            return
        self._write(c.ACK)
        body = self._read_frame()
        request = c.decode_request(body)
        self.requests.append(request)
        time.sleep(self.behaviour.customer_delay_s)
        self._reply(request)

    def _read_frame(self) -> bytes:
        while (event := self._next(SIM_WAIT_S)) is not None:
            if isinstance(event, c.BadFrame):
                self._write(c.NAK)
            elif isinstance(event, c.Message):
                if self.behaviour.nak_frames > 0:
                    self.behaviour.nak_frames -= 1
                    self._write(c.NAK)
                    continue
                self._write(c.ACK)
                self._next(SIM_WAIT_S)  # EOT
                return event.body
        raise _LinkGone("no request frame")

    def _reply(self, request: c.PaymentRequest) -> None:
        b = self.behaviour
        if b.drop_link_before_reply:
            b.drop_link_before_reply = False
            self._close_pty()
            self._open_pty()
            raise _LinkGone("dropped before reply")
        if b.silent_before_reply:
            raise _LinkGone("silent before reply")
        refused = request.amount_minor % 100 == CENTS_REFUSED
        reply = c.PaymentReply(
            request.pos_number,
            c.STATUS_FAILED if refused else c.STATUS_SUCCESS,
            request.amount_minor,
            request.payment_mode,
            request.transaction_type.value,
            request.currency_numeric,
            request.private,
        )
        self._deliver(c.encode_frame(c.encode_reply(reply, request)))

    def _deliver(self, frame: bytes) -> None:
        self._write(c.ENQ)
        if self._next(SIM_WAIT_S) != c.Control(c.ACK):
            raise _LinkGone("no ACK to ENQ")
        for _attempt in range(4):
            self._write(frame)
            if self._next(SIM_WAIT_S) == c.Control(c.ACK):
                self._write(c.EOT)
                return
        raise _LinkGone("reply never acknowledged")
