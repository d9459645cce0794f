"""The daemon's link to its receipt printer: async calls over one I/O thread.

All port access runs on a single dedicated thread, so writes and status
queries never interleave and the event loop never blocks on the line. The
port is opened lazily and reopened after it vanished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from device.printer import status
from device.printer.settings import PrinterSettings
from device.printer.status import PrinterStatus, StatusKind
from device.serial_port import (
    PortMissing,
    PortUnusable,
    SerialPort,
    SerialPortError,
    WriteStalled,
)

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


class StateCode(StrEnum):
    """What the link knows about the printer, coarsest first."""

    READY = "ready"
    ABSENT = "absent"
    OFFLINE = "offline"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    STALLED = "stalled"
    MISCONFIGURED = "misconfigured"
    UNKNOWN = "unknown"


# States in which a job may go out: the printer said it is ready, or it said
# nothing we can trust (status is advice, never a reason to refuse printing).
PRINTABLE = frozenset({StateCode.READY, StateCode.UNKNOWN})

_TEXTS: dict[StateCode, tuple[str, str]] = {
    StateCode.READY: ("printer ready", "nothing to do"),
    StateCode.ABSENT: (
        "printer not connected",
        "check the printer's cable and power; jobs print when it is back",
    ),
    StateCode.OFFLINE: ("printer offline", "press the printer's online button"),
    StateCode.PAPER_OUT: ("printer out of paper", "load a new paper roll"),
    StateCode.COVER_OPEN: ("printer cover open", "close the printer cover"),
    StateCode.STALLED: (
        "printer stopped taking data",
        "check the printer for a paper jam or error light, or switch it off and on",
    ),
    StateCode.MISCONFIGURED: (
        "link misconfigured (check baud rate / parity)",
        "make [printer] baudrate and parity match the printer's settings page",
    ),
    StateCode.UNKNOWN: (
        "printer does not answer status requests",
        "jobs are sent anyway; check the printout",
    ),
}


@dataclass(frozen=True, slots=True)
class PrinterState:
    """The printer's state, why, and what a person should do about it."""

    code: StateCode
    reason: str
    action: str

    @classmethod
    def of(cls, code: StateCode, reason: str | None = None) -> PrinterState:
        """Return the state for a code with its standard texts."""
        default_reason, action = _TEXTS[code]
        return cls(code, reason or default_reason, action)

    @property
    def printable(self) -> bool:
        """Return True when a job may be sent in this state."""
        return self.code in PRINTABLE


class LinkError(Exception):
    """Base of the link's errors."""


class PrinterUnavailable(LinkError):
    """Raised when the port could not be opened; nothing was sent."""


class PrintInterrupted(LinkError):
    """Raised when a write failed part way; some bytes may have printed."""

    def __init__(self, message: str, *, written: int) -> None:
        super().__init__(message)
        self.written = written


class PrinterLink:
    """Send bytes to the printer and ask its status, without blocking the loop."""

    def __init__(
        self, settings: PrinterSettings, *, port: SerialPort | None = None
    ) -> None:
        self.settings = settings
        self._port = port or SerialPort(settings)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="printer-io")
        self._state = PrinterState.of(StateCode.UNKNOWN, "printer not asked yet")
        self._warned: StateCode | None = None
        self._answered_before = False
        self._closed = False

    @property
    def state(self) -> PrinterState:
        """Return the last known printer state."""
        return self._state

    async def send(self, data: bytes) -> None:
        """Write a job's bytes; raise PrinterUnavailable or PrintInterrupted."""
        await self._in_thread(self._open)
        try:
            await self._in_thread(self._port.write, data)
        except WriteStalled as err:
            self._set(StateCode.STALLED)
            raise PrintInterrupted(str(err), written=err.written) from err
        except SerialPortError as err:
            self._set(StateCode.ABSENT, "printer disconnected while printing")
            raise PrintInterrupted(str(err), written=_written(err)) from err
        if self._state.code in (StateCode.STALLED, StateCode.ABSENT):
            self._set(StateCode.READY)

    async def ensure_open(self) -> bool:
        """Open the port if needed; return False (state absent) when it is missing."""
        try:
            await self._in_thread(self._open)
        except PrinterUnavailable:
            return False
        return True

    async def query_status(self) -> PrinterState:
        """Ask the printer with DLE EOT 1..4 and return the resulting state."""
        try:
            await self._in_thread(self._open)
            answers = await self._in_thread(self._ask_all)
        except PrinterUnavailable:
            return self._state
        except WriteStalled:
            self._set(StateCode.STALLED)
            return self._state
        except SerialPortError:
            self._set(StateCode.ABSENT, "printer disconnected")
            return self._state
        return self._judge(status.parse(answers))

    async def close(self) -> None:
        """Close the port and stop the I/O thread; closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        await self._in_thread(self._port.close)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def _in_thread(self, func: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def _open(self) -> None:
        try:
            self._port.open()
        except PortMissing as err:
            reason = f"printer not connected ({self.settings.port})"
            self._set(StateCode.ABSENT, reason)
            raise PrinterUnavailable(str(err)) from err
        except PortUnusable as err:
            self._set(StateCode.ABSENT, f"printer port unusable: {err}")
            raise PrinterUnavailable(str(err)) from err

    def _ask_all(self) -> dict[int, bytes]:
        """Ask each status byte; stop early when the printer says nothing."""
        self._port.discard_input()
        answers: dict[int, bytes] = {}
        for kind in StatusKind:
            self._port.write(status.request(kind))
            answers[kind] = self._port.read(1, self.settings.status_timeout_s)
            if kind == StatusKind.PRINTER and not answers[kind]:
                break
        return answers

    def _judge(self, parsed: PrinterStatus) -> PrinterState:
        if parsed.answered and not parsed.garbled:
            self._answered_before = True
        if status.looks_misconfigured(parsed):
            self._set(StateCode.MISCONFIGURED)
        elif not parsed.answered and self._state.code == StateCode.STALLED:
            # It answered before and now neither reads nor answers: still stuck.
            if not self._answered_before:
                self._set(StateCode.UNKNOWN)
        elif not parsed.answered:
            self._set(StateCode.UNKNOWN)
        elif parsed.paper_end:
            self._set(StateCode.PAPER_OUT)
        elif parsed.cover_open:
            self._set(StateCode.COVER_OPEN)
        elif parsed.error:
            self._set(StateCode.OFFLINE, "printer reports an error")
        elif parsed.online is False:
            self._set(StateCode.OFFLINE)
        elif parsed.paper_near_end:
            self._set(StateCode.READY, "printer ready; paper running low")
        else:
            self._set(StateCode.READY)
        return self._state

    def _set(self, code: StateCode, reason: str | None = None) -> None:
        new = PrinterState.of(code, reason)
        old, self._state = self._state, new
        if code in PRINTABLE:
            if self._warned is not None:
                _LOGGER.info("printer recovered: %s (was %s)", new.reason, self._warned)
            self._warned = None
        elif self._warned != code:
            self._warned = code
            _LOGGER.warning("%s: %s", new.reason, new.action)
        elif old != new:
            _LOGGER.debug("%s", new.reason)
        else:
            _LOGGER.debug("still %s", code)


def _written(err: SerialPortError) -> int:
    return getattr(err, "written", 0)
