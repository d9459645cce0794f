"""A fault-injecting HTTP/1.1 proxy on loopback, one scripted fault per request.

It understands just enough HTTP (Content-Length bodies, keep-alive) to act
before or after the upstream answered: drop the connection before forwarding,
drop it after the receiver committed, hold the answer past the client's
timeout, answer 5xx/429 itself, or cut the answer short. It never reorders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PASS = "pass"
DROP_BEFORE = "drop_before"  # reset before the receiver sees the request
DROP_AFTER = "drop_after"  # the receiver committed; the answer is lost
DELAY = "delay"  # the answer comes after the client gave up
STATUS = "status"  # the proxy answers with an error status itself
TRUNCATE = "truncate"  # the answer is cut off mid-body


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request."""

    kind: str = PASS
    status: int = 0
    retry_after: str | None = None
    delay_s: float = 0.0


def random_fault(rng: random.Random, rate: float, delay_s: float) -> Fault:
    """Pick a fault (or a pass) as the soak test does."""
    if rng.random() >= rate:
        return Fault()
    choice = rng.choice([DROP_BEFORE, DROP_AFTER, DELAY, TRUNCATE, "500", "503",
                         "429", "429ra"])
    if choice == "429ra":
        return Fault(STATUS, 429, retry_after="0")
    if choice.isdigit():
        return Fault(STATUS, int(choice))
    return Fault(choice, delay_s=delay_s)


class FaultProxy:
    """Listens on 127.0.0.1 and forwards to the upstream port, applying faults."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: deque[Fault] = deque()
        self.chooser: Callable[[], Fault] | None = None
        self.applied: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _next_fault(self) -> Fault:
        if self.faults:
            return self.faults.popleft()
        return self.chooser() if self.chooser else Fault()

    async def _track(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            _abort(writer)

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_message(reader)
            if request is None:
                return
            fault = self._next_fault()
            self.applied.append(fault.kind if fault.kind != STATUS
                                else f"status {fault.status}")
            if not await self._apply(fault, request, writer):
                return

    async def _apply(self, fault: Fault, request: bytes,
                     writer: asyncio.StreamWriter) -> bool:
        """Apply one fault; return False when the client connection is gone."""
        if fault.kind == DROP_BEFORE:
            return False
        if fault.kind == STATUS:
            writer.write(_status_response(fault.status, fault.retry_after))
            await writer.drain()
            return True
        response = await self._forward(request)
        if fault.kind == DROP_AFTER:
            return False
        if fault.kind == DELAY:
            await asyncio.sleep(fault.delay_s)
        if fault.kind == TRUNCATE:
            writer.write(response[: max(1, len(response) - 8)])
            await writer.drain()
            return False
        writer.write(response)
        await writer.drain()
        return True

    async def _forward(self, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            writer.write(request)
            await writer.drain()
            response = await _read_message(reader)
            if response is None:
                raise ConnectionResetError("upstream closed without an answer")
            return response
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
    """Read one HTTP message (head and Content-Length body) or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if err.partial:
            raise
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise ValueError("the fault proxy does not handle chunked bodies")
    return head + await reader.readexactly(length)


def _status_response(status: int, retry_after: str | None) -> bytes:
    body = json.dumps({"type": "about:blank", "title": "injected",
                       "status": status, "detail": "fault proxy"}).encode()
    lines = [f"HTTP/1.1 {status} Injected", "Content-Type: application/problem+json",
             f"Content-Length: {len(body)}"]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped 4G link looks."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
    writer.transport.abort()
