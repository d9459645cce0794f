"""The control socket: how CLI commands ask the running daemon to change state.

Exactly one process writes the journal (SQLite before 3.51.3 can corrupt a WAL
file when two connections write or checkpoint at once). The daemon holds an
exclusive lock on ``daemon.lock`` in the state dir and answers JSON requests on
``control.sock`` (mode 0600, so only the service user can ask). A CLI command
either reaches the daemon through the socket or, when nobody holds the lock,
takes the lock itself and becomes the only writer for its short run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from daemon.errors import InputError, RetryLaterError, StallboxError

_LOG = logging.getLogger(__name__)
SOCKET_NAME = "control.sock"
LOCK_NAME = "daemon.lock"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
CLIENT_TIMEOUT_S = 120.0
Op = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class StateLocked(StallboxError):
    """Raised when another process already owns the state dir."""


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[int]:
    """Hold the state dir's exclusive writer lock, or raise StateLocked."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise StateLocked(f"{state_dir} is in use by a running daemon") from err
        yield fd
    finally:
        os.close(fd)


async def serve_control(state_dir: Path, ops: dict[str, Op]) -> asyncio.AbstractServer:
    """Listen on the control socket and dispatch each JSON line to its op."""
    path = state_dir / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def handle(reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await _dispatch(line, ops)
        except (ValueError, asyncio.LimitOverrunError):
            reply = {"ok": False, "error": "request too large or malformed"}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path),
                                                 limit=MAX_REQUEST_BYTES)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server


async def _dispatch(line: bytes, ops: dict[str, Op]) -> dict[str, Any]:
    try:
        request = json.loads(line)
        op = ops[request["op"]]
    except (ValueError, KeyError, TypeError):
        return {"ok": False, "error": "unknown or malformed request"}
    try:
        return {"ok": True, **await op(request)}
    except StallboxError as err:
        return {"ok": False, "error": str(err)}


def ask_daemon(state_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the running daemon and return its answer."""
    path = state_dir / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT_S)
        try:
            sock.connect(str(path))
        except OSError as err:
            raise RetryLaterError(f"cannot reach the daemon at {path}: "
                                  f"{err.strerror}") from err
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data or b"{}")
    if not reply.get("ok"):
        raise InputError(reply.get("error", "the daemon gave no answer"))
    return reply


def encode_file(data: bytes) -> str:
    """Return file bytes as base64 text for a control request."""
    return base64.b64encode(data).decode("ascii")


def decode_file(text: str) -> bytes:
    """Decode a control request's base64 file."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as err:
        raise InputError("file is not valid base64") from err
