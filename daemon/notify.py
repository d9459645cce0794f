"""Speak systemd's notify protocol (sd_notify(3)) over NOTIFY_SOCKET.

The protocol is newline-separated ``KEY=VALUE`` lines in one datagram to the
unix socket systemd names in ``$NOTIFY_SOCKET`` (a leading ``@`` means the
abstract namespace). Without that variable every call here does nothing, so the
daemon runs the same outside systemd.

WATCHDOG=1 is sent by a task on the event loop, not by a thread: if the loop
blocks, the pings stop and systemd restarts the service after ``WatchdogSec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

_LOG = logging.getLogger(__name__)
# STATUS= is shown by `systemctl status`; keep it to one short line.
MAX_STATUS_CHARS = 200
# Ping at half the interval systemd asked for, as sd_watchdog_enabled(3) advises.
WATCHDOG_FRACTION = 0.5


class Notifier:
    """Send notify messages to systemd; a no-op when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval_s = _watchdog_interval_s(env)
        self._sock: socket.socket | None = None
        self._failed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Return whether a notify socket was given."""
        return self._address is not None

    def send(self, **fields: str) -> bool:
        """Send one datagram of KEY=VALUE lines; never raise, never block."""
        if self._address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode("utf-8"), self._address)
        except OSError as err:
            # systemd gone or its queue full: log once, the service goes on.
            level = logging.DEBUG if self._failed else logging.WARNING
            _LOG.log(level, "sd_notify failed: %s", err)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> None:
        """Tell systemd the daemon serves: HTTP bound and the journal open."""
        self.send(READY="1", STATUS=_one_line(status))

    def status(self, status: str) -> None:
        """Set the one-line status `systemctl status` shows."""
        self.send(STATUS=_one_line(status))

    def stopping(self, status: str = "stopping") -> None:
        """Tell systemd the daemon began its orderly shutdown."""
        self.send(STOPPING="1", STATUS=_one_line(status))

    def start_watchdog(self) -> None:
        """Start pinging from the running loop if systemd asked for a watchdog."""
        if self.enabled and self.watchdog_interval_s and self._task is None:
            self._task = asyncio.create_task(self._watchdog(), name="sd-watchdog")

    async def _watchdog(self) -> None:
        assert self.watchdog_interval_s is not None
        period_s = self.watchdog_interval_s * WATCHDOG_FRACTION
        while True:
            self.send(WATCHDOG="1")
            await asyncio.sleep(period_s)

    async def close(self) -> None:
        """Stop the watchdog task and close the socket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if not value or value[0] not in "/@":
        return None
    if value[0] == "@":
        return b"\0" + value[1:].encode()
    return value


def _watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Return WATCHDOG_USEC in seconds if it is meant for this process."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_STATUS_CHARS]
