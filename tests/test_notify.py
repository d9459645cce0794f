"""systemd notify protocol: READY, STATUS, WATCHDOG from the loop, STOPPING."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.notify import Notifier
from scripts.daemonproc import DaemonProcess, run_cli, write_config
from tests.test_crash import CATALOG, _pair

WAIT_S = 10.0
WATCHDOG_USEC = 200_000  # the daemon pings every 0.1 s
BLOCK_S = 1.5
SLOW_SALE_S = 1.0
# Run the real CLI with two test hooks: SIGUSR1 blocks the main thread (which
# runs the event loop) as a blocking call on the loop would, and every sale
# takes SLOW_SALE_S longer, so one can be caught in flight.
LAUNCHER = (
    "-c",
    "import asyncio, signal, sys, time\n"
    f"signal.signal(signal.SIGUSR1, lambda *_: time.sleep({BLOCK_S}))\n"
    "from daemon.runtime import Stallbox\n"
    "sell = Stallbox.sell\n"
    "async def slow_sell(self, request):\n"
    f"    await asyncio.sleep({SLOW_SALE_S})\n"
    "    return await sell(self, request)\n"
    "Stallbox.sell = slow_sell\n"
    "from daemon.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n",
)


class FakeSystemd:
    """A unix datagram socket standing where systemd's notify socket would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._cond = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._cond:
                self.messages.append((time.monotonic(), fields))
                self._cond.notify_all()

    def wait_for(self, key: str, timeout_s: float = WAIT_S) -> dict[str, str]:
        """Block until a message with key arrives; return it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for _, fields in self.messages:
                    if key in fields:
                        return fields
                left = deadline - time.monotonic()
                assert left > 0, f"no {key} in {self.messages}"
                self._cond.wait(left)

    def times(self, key: str) -> list[float]:
        """Return when each message carrying key arrived."""
        with self._cond:
            return [at for at, fields in self.messages if key in fields]

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self._sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.send(READY="1") is False
    assert notifier.watchdog_interval_s is None


async def test_ready_and_status_reach_the_socket(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(systemd.path)})
    notifier.ready("serving on\nhttp://x/")
    fields = systemd.wait_for("READY")
    assert fields == {"READY": "1", "STATUS": "serving on http://x/"}
    await notifier.close()


async def test_abstract_socket_address() -> None:
    name = f"stallbox-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.stopping()
        assert server.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
        await notifier.close()


async def test_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.send(STATUS="x") is False
    assert notifier.send(STATUS="y") is False
    await notifier.close()


def test_watchdog_for_another_pid_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000000",
           "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(env).watchdog_interval_s is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier(env).watchdog_interval_s == 1.0


async def test_blocked_loop_stops_the_pings(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "100000"})
    notifier.start_watchdog()
    await asyncio.sleep(0.5)
    time.sleep(0.6)  # noqa: ASYNC251 - the point: a blocked loop
    await asyncio.sleep(0.2)
    await notifier.close()
    pings = systemd.times("WATCHDOG")
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert len(pings) >= 8
    assert max(gaps) >= 0.55
    assert sorted(gaps)[len(gaps) // 2] < 0.1


def _events(state: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
    with contextlib.closing(conn):
        rows = conn.execute("SELECT kind FROM events ORDER BY seq")
        return [kind for (kind,) in rows]


def _start(tmp_path: Path, systemd: FakeSystemd) -> tuple[DaemonProcess, str]:
    state = tmp_path / "state"
    config = write_config(tmp_path / "stallbox.toml", state)
    env = dict(os.environ, NOTIFY_SOCKET=str(systemd.path),
               WATCHDOG_USEC=str(WATCHDOG_USEC))
    daemon = DaemonProcess(config, env=env, launcher=LAUNCHER)
    token = _pair(state, daemon.url)
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    imported = run_cli("import-catalog", str(catalog), "--state", str(state))
    assert imported.returncode == 0
    return daemon, token


@pytest.mark.slow
def test_daemon_notifies_and_blocked_loop_stops_watchdog(
        tmp_path: Path, systemd: FakeSystemd) -> None:
    daemon, _ = _start(tmp_path, systemd)
    try:
        assert systemd.wait_for("READY")["STATUS"].startswith("serving on http://")
        time.sleep(0.5)
        blocked_at = time.monotonic()
        os.kill(daemon.proc.pid, signal.SIGUSR1)
        time.sleep(BLOCK_S + 0.5)
        pings = systemd.times("WATCHDOG")
        during = [t for t in pings if blocked_at + 0.2 < t < blocked_at + BLOCK_S - 0.2]
        after = [t for t in pings if t > blocked_at + BLOCK_S]
        assert len([t for t in pings if t < blocked_at]) >= 3
        assert during == []
        assert after, "pings did not resume after the loop unblocked"
    finally:
        assert daemon.terminate() == 0
    systemd.wait_for("STOPPING")


def _sale_request(token: str, body: bytes) -> bytes:
    return (f"POST /api/v1/sales HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()


@pytest.mark.slow
def test_sigterm_finishes_in_flight_sale_and_journals_shutdown(
        tmp_path: Path, systemd: FakeSystemd) -> None:
    daemon, token = _start(tmp_path, systemd)
    body = (b'{"client_ref": "3f1c0e4a9b2d4e6f8a7b6c5d4e3f2a1b", "lines": '
            b'[{"sku": "TEE", "qty": 1}], "payment": {"method": "cash", '
            b'"tendered_minor": 500}}')
    port = int(daemon.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as conn:
        conn.sendall(_sale_request(token, body) + body)
        time.sleep(SLOW_SALE_S / 4)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        reply = conn.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 201"), reply + "".join(daemon.log)
    assert daemon.terminate() == 0
    assert time.monotonic() - started < 5.0
    kinds = _events(tmp_path / "state")
    assert kinds[-1] == "daemon.stopped"
    assert kinds[-2].startswith("sale"), kinds[-4:]
