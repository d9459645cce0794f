"""Blocking serial link for terminal drivers: open, write, read, close.

Runs only on a driver's own worker thread, never on the event loop. A port
that vanished (USB adapter unplugged) is closed and reopened by path on the
next operation, so a ``/dev/serial/by-id/...`` link finds the adapter again
even under another ``ttyUSBn``.
"""

from __future__ import annotations

import logging
import termios
import time
from dataclasses import dataclass

import serial

from device.terminal.base import LinkDown

# Between attempts to reopen a port that vanished (an adapter re-enumerating).
REOPEN_RETRY_S = 0.1

logger = logging.getLogger(__name__)

READ_POLL_S = 0.05  # how long one read waits; callers loop to their deadline


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Serial line settings; ZVT defaults to 9600 baud 8N2."""

    port: str
    baudrate: int = 9600
    bytesize: int = serial.EIGHTBITS
    parity: str = serial.PARITY_NONE
    stopbits: float = serial.STOPBITS_TWO


class SerialLink:
    """A serial port that reopens itself after it vanished."""

    def __init__(self, settings: LinkSettings) -> None:
        self._settings = settings
        self._port: serial.Serial | None = None
        self._failing = False
        self.opened_count = 0

    @property
    def is_open(self) -> bool:
        """Return True while the port is open."""
        return self._port is not None

    def open_within(self, timeout_s: float) -> bool:
        """Open, retrying while a USB adapter re-enumerates; True if opened now."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.open()
            except LinkDown:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(REOPEN_RETRY_S)

    def open(self) -> bool:
        """Open the port if needed; return True if it was (re)opened now."""
        if self._port is not None:
            return False
        s = self._settings
        try:
            self._port = serial.Serial(
                s.port,
                s.baudrate,
                s.bytesize,
                s.parity,
                s.stopbits,
                timeout=READ_POLL_S,
                write_timeout=2.0,
            )
        except (serial.SerialException, OSError, ValueError, termios.error) as err:
            self._note_failure(f"cannot open {s.port}: {err}")
            raise LinkDown(f"cannot open {s.port}: {err}") from err
        self.opened_count += 1
        log = logger.info if self._failing or self.opened_count == 1 else logger.debug
        log("terminal port %s open", s.port)
        self._failing = False
        return True

    def close(self) -> None:
        """Close the port; safe to call twice."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                logger.debug("closing %s failed", self._settings.port, exc_info=True)

    def write(self, data: bytes) -> None:
        """Write all of ``data``; raise LinkDown if the port is gone."""
        port = self._require()
        try:
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError, termios.error) as err:
            self._lost(err)
            raise LinkDown(f"write to {self._settings.port} failed") from err

    def read(self) -> bytes:
        """Return what arrived within ``READ_POLL_S`` (maybe nothing)."""
        port = self._require()
        try:
            return port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError, termios.error) as err:
            self._lost(err)
            raise LinkDown(f"read from {self._settings.port} failed") from err

    def _require(self) -> serial.Serial:
        if self._port is None:
            raise LinkDown(f"{self._settings.port} is not open")
        return self._port

    def _lost(self, err: Exception) -> None:
        self.close()
        self._note_failure(f"lost {self._settings.port}: {err}")

    def _note_failure(self, message: str) -> None:
        # A repeating failure logs WARNING once, then DEBUG until it recovers.
        (logger.debug if self._failing else logger.warning)("%s", message)
        self._failing = True
