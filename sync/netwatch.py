"""Notice routes and links appearing without polling: a Linux rtnetlink listener.

The kernel multicasts route and address changes to NETLINK_ROUTE groups
(rtnetlink(7)); a 4G dongle coming up or Wi-Fi re-associating shows up there at
once. Where netlink is unavailable the worker falls back to its backoff timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

_LOG = logging.getLogger(__name__)
# rtnetlink multicast groups, linux/rtnetlink.h
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR
          | RTMGRP_IPV6_ROUTE)
DEBOUNCE_S = 1.0  # a link coming up sends a burst of messages; act once


class NetWatch:
    """Calls on_change (debounced) whenever the kernel reports a network change."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._sock: socket.socket | None = None
        self._pending: asyncio.TimerHandle | None = None

    def start(self) -> bool:
        """Subscribe to rtnetlink; return False where that is not possible."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                 socket.NETLINK_ROUTE)
            sock.bind((0, GROUPS))
            sock.setblocking(False)
        except (OSError, AttributeError) as err:
            _LOG.info("no rtnetlink (%s); network changes noticed on retry only", err)
            return False
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        return True

    def _readable(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(65536):
                pass
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(DEBOUNCE_S, self._fire)

    def _fire(self) -> None:
        self._pending = None
        _LOG.debug("network change reported by the kernel")
        self._on_change()

    def stop(self) -> None:
        """Unsubscribe and close the socket."""
        if self._pending is not None:
            self._pending.cancel()
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
