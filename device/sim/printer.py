"""A simulated ESC/POS receipt printer on a real pseudo-terminal.

The daemon opens `port_path` with pyserial exactly as it would open
/dev/serial/by-id/...; this side reads the master end in a thread, decodes
what arrives, answers DLE EOT status requests and keeps the printed receipts.
It can be switched offline, out of paper, stalled, unplugged or garbled.

Run `python -m device.sim.printer` to get one on the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import termios
import threading
import time
import tty
from pathlib import Path

from device.printer import status
from device.printer.status import PrinterStatus
from device.sim.escpos_decoder import (
    Cut,
    EscposDecoder,
    Event,
    Feed,
    StatusRequest,
    TextLine,
)

_LOGGER = logging.getLogger(__name__)

READ_CHUNK = 4096
POLL_S = 0.02
# 8N1: a start bit, 8 data bits and a stop bit carry one byte.
BITS_PER_BYTE = 10
# ASCII DC1/DC3: how a printer using XON/XOFF says "go on" and "stop sending".
XON, XOFF = b"\x11", b"\x13"
XOFF_SETTLE_S = 0.05
UNPLUG_SETTLE_S = 0.05
# Used by garbled mode when no real speed mismatch is configured.
GARBLE_RATIO = 2
_SPEEDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
}


def uart_resample(data: bytes, tx_baud: int, rx_baud: int) -> bytes:
    """Return what a UART at rx_baud reads from 8N1 bytes sent at tx_baud.

    A pty carries bytes, not bits, so it cannot show a baud mismatch. This
    rebuilds the line level bit by bit and samples it the way a receiver
    does: wait for a falling edge, sample mid-bit, check the stop bit. A
    framing error reads as NUL, as Linux delivers it without PARMRK.
    """
    wave: list[int] = []
    for byte in data:
        wave += [0, *((byte >> bit) & 1 for bit in range(8)), 1]
    end_s = (len(wave) + 2) / tx_baud
    out = bytearray()
    t, step = 0.0, 1 / (rx_baud * 8)

    def level(at_s: float) -> int:
        index = int(at_s * tx_baud)
        return wave[index] if 0 <= index < len(wave) else 1

    while t < end_s:
        if level(t):
            t += step
            continue
        bit_s = 1 / rx_baud
        if level(t + bit_s / 2):
            t += step
            continue
        value = sum(level(t + (1.5 + k) * bit_s) << k for k in range(8))
        out.append(value if level(t + 9.5 * bit_s) else 0)
        t += 9.5 * bit_s
    return bytes(out)


class SimulatedPrinter:
    """An ESC/POS printer at the far end of a pty."""

    def __init__(
        self,
        *,
        baudrate: int = 9600,
        default_codepage: int = 0,
        link_path: Path | None = None,
        paced: bool = False,
    ) -> None:
        self.baudrate = baudrate
        self.paced = paced
        self.link_path = link_path
        self.receipts: list[str] = []
        self.bytes_received = 0
        self.status_requests = 0
        self.online = True
        self.paper_out = False
        self.cover_open = False
        self.garbled = False
        self._default_codepage = default_codepage
        self._lines: list[str] = []
        self._held: list[Event] = []
        self._stalled = False
        self._lock = threading.Condition()
        self._master: int | None = None
        self._slave: int | None = None
        self._pts = ""
        self._thread: threading.Thread | None = None
        self._running = False
        self._decoder = EscposDecoder(default_codepage)

    # lifecycle

    @property
    def port_path(self) -> str:
        """Return the path the daemon opens: the link if given, else the pts."""
        return str(self.link_path) if self.link_path else self._pts

    def start(self) -> SimulatedPrinter:
        """Open the pty and start reading in a thread."""
        self._plug()
        self._running = True
        self._thread = threading.Thread(
            target=self._run, name="sim-printer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the pty."""
        self._running = False
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._unplug()

    def __enter__(self) -> SimulatedPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # switches

    def set_online(self, online: bool) -> None:
        """Switch the printer online or offline (the button on its front)."""
        with self._lock:
            self.online = online
            self._release_if_ready()

    def set_paper_out(self, out: bool) -> None:
        """Run out of paper, or load a new roll."""
        with self._lock:
            self.paper_out = out
            self._release_if_ready()

    def set_cover_open(self, cover_open: bool) -> None:
        """Open or close the cover."""
        with self._lock:
            self.cover_open = cover_open
            self._release_if_ready()

    def set_stalled(self, stalled: bool) -> None:
        """Stop or resume reading the line, so the host's writes block."""
        with self._lock:
            self._stalled = stalled
            xoff = self._master is not None and self._host_uses_xonxoff()
            if xoff and self._master is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._master, XOFF if stalled else XON)
            self._lock.notify_all()
        if xoff:
            # The host's line discipline applies XOFF a moment later, as a
            # real UART would; wait so callers see the host stopped.
            time.sleep(XOFF_SETTLE_S)

    def set_garbled(self, garbled: bool) -> None:
        """Emulate a baud-rate mismatch even when the speeds agree."""
        self.garbled = garbled

    def unplug(self) -> None:
        """Pull the cable: the port vanishes and the host's I/O fails."""
        with self._lock:
            self._unplug()
        # The kernel hangs up the host's side of the pty a moment later, as a
        # USB adapter's removal reaches the driver; wait so the host sees it.
        time.sleep(UNPLUG_SETTLE_S)

    def replug(self) -> None:
        """Plug back in: a new pty, and the link path points to it again."""
        with self._lock:
            self._plug()
            self._lock.notify_all()

    def wait_for_receipts(self, count: int, timeout_s: float = 5.0) -> list[str]:
        """Block until at least count receipts are printed; return them."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.receipts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.receipts)} of {count} receipts")
                self._lock.wait(left)
            return list(self.receipts)

    def status(self) -> PrinterStatus:
        """Return the status this printer reports."""
        ready = not (self.paper_out or self.cover_open)
        return PrinterStatus(
            online=self.online and ready,
            cover_open=self.cover_open,
            paper_end=self.paper_out,
        )

    # the pty

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)  # an answer nobody reads must not block
        self._master, self._slave, self._pts = master, slave, os.ttyname(slave)
        self._decoder = EscposDecoder(self._default_codepage)
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._pts)
            tmp.replace(self.link_path)
        _LOGGER.info("simulated printer on %s", self.port_path)

    def _unplug(self) -> None:
        if self.link_path is not None:
            self.link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def _host_uses_xonxoff(self) -> bool:
        assert self._master is not None
        return bool(termios.tcgetattr(self._master)[0] & termios.IXON)

    def _host_baud(self) -> int:
        assert self._master is not None
        return _SPEEDS.get(termios.tcgetattr(self._master)[4], self.baudrate)

    # the reader thread

    def _run(self) -> None:
        while self._running:
            data = self._read_some()
            if data:
                self._receive(data)

    def _read_some(self) -> bytes:
        with self._lock:
            if self._stalled or self._master is None:
                self._lock.wait(POLL_S)
                return b""
            master = self._master
        try:
            ready, _, _ = select.select([master], [], [], POLL_S)
            return os.read(master, READ_CHUNK) if ready else b""
        except OSError:
            return b""  # unplugged while we waited

    def _receive(self, data: bytes) -> None:
        if self.paced:
            time.sleep(len(data) * BITS_PER_BYTE / self.baudrate)
        self.bytes_received += len(data)
        with self._lock:
            if self._master is None:
                return
            host_baud = self._host_baud()
            mismatch = self.garbled or host_baud != self.baudrate
            events = self._decoder.feed(data)
            if mismatch:
                events = self._garble(data, events, host_baud)
            for event in events:
                self._apply(event, host_baud, mismatch)

    def _garble(self, data: bytes, events: list[Event], host_baud: int) -> list[Event]:
        # The status requests still come from the clean stream: the emulation
        # assumes the printer hears the request and answers at its own speed,
        # which the host then reads at the wrong one. Printing sees the bytes
        # as the printer's UART would, so a mismatched job prints garbage.
        printer_baud = self._printer_baud(host_baud)
        garbage = EscposDecoder(self._default_codepage).feed(
            uart_resample(data, host_baud, printer_baud)
        )
        requests = [e for e in events if isinstance(e, StatusRequest)]
        return requests + [e for e in garbage if not isinstance(e, StatusRequest)]

    def _printer_baud(self, host_baud: int) -> int:
        if host_baud != self.baudrate:
            return self.baudrate
        return host_baud * GARBLE_RATIO

    def _apply(self, event: Event, host_baud: int, mismatch: bool) -> None:
        if isinstance(event, StatusRequest):
            self._answer(event.n, host_baud, mismatch)
        elif self.status().online and not self._held:
            self._print(event)
        else:
            self._held.append(event)

    def _answer(self, n: int, host_baud: int, mismatch: bool) -> None:
        self.status_requests += 1
        if not 1 <= n <= 4 or self._master is None:
            return
        answer = status.encode_answer(n, self.status())
        if mismatch:
            answer = uart_resample(answer, self._printer_baud(host_baud), host_baud)
        try:
            os.write(self._master, answer)
        except BlockingIOError:
            _LOGGER.debug("host does not read status answers")

    def _print(self, event: Event) -> None:
        if isinstance(event, TextLine):
            self._lines.append(event.text)
        elif isinstance(event, Feed):
            self._lines.extend([""] * event.lines)
        elif isinstance(event, Cut):
            while self._lines and not self._lines[-1]:
                self._lines.pop()
            self.receipts.append("".join(line + "\n" for line in self._lines))
            self._lines = []
            self._lock.notify_all()

    def _release_if_ready(self) -> None:
        if not self.status().online:
            return
        held, self._held = self._held, []
        for event in held:
            self._print(event)


def main() -> None:
    """Run a simulated printer until interrupted; print its port path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baudrate", type=int, default=9600)
    parser.add_argument("--link", type=Path, help="keep a symlink to the pty here")
    parser.add_argument("--paced", action="store_true", help="run at line speed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    printer = SimulatedPrinter(
        baudrate=args.baudrate, link_path=args.link, paced=args.paced
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with printer:
        print(printer.port_path, flush=True)
        shown = 0
        try:
            while not stop.wait(0.2):
                for text in printer.receipts[shown:]:
                    print(text + "-" * 20, flush=True)
                    shown += 1
        except KeyboardInterrupt:
            pass

if __name__ == "__main__":
    main()
