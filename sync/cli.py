"""The `stallbox identity`, `stallbox sync` and `stallbox receiver` commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.config import Config, ConfigError
from daemon.control import StateLocked, ask_daemon, state_lock
from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE

_LOG = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.5
DEFAULT_RECEIVER_PORT = 8900
ConfigFor = Callable[[argparse.Namespace], Config]


def add_commands(sub: Any,
                 state_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the identity, sync and receiver sub-commands to the CLI."""
    ident = sub.add_parser("identity", help="print this box's device public key "
                           "(to enrol it with the receiver)")
    state_args(ident)
    syn = sub.add_parser("sync", help="show cloud sync progress; --now syncs now")
    syn.add_argument("--now", action="store_true",
                     help="sync now (joining a running attempt) and show progress")
    state_args(syn)
    _receiver_parser(sub)


def _receiver_parser(sub: Any) -> None:
    rec = sub.add_parser("receiver", help="run the reference billing receiver")
    rec.add_argument("--host", default="127.0.0.1")
    rec.add_argument("--port", type=int, default=DEFAULT_RECEIVER_PORT)
    rec.add_argument("--data", type=Path, default=Path("stallbox-receiver"),
                     help="data dir (SQLite database)")
    rec.add_argument("--rate", type=float, default=20.0,
                     help="batches per second per stall (0: unlimited)")
    rsub = rec.add_subparsers(dest="receiver_command")
    enroll = rsub.add_parser("enroll", help="enrol a stall's device public key")
    enroll.add_argument("--stall", required=True)
    enroll.add_argument("--public-key", required=True,
                        help="the last line `stallbox identity` printed")
    token = rsub.add_parser("enroll-token", help="print a one-time enrolment token")
    token.add_argument("--stall", required=True)
    token.add_argument("--ttl-s", type=int, default=86400)
    revoke = rsub.add_parser("revoke", help="refuse a stall's batches from now on")
    revoke.add_argument("--stall", required=True)
    for parser in (enroll, token, revoke):
        parser.add_argument("--data", type=Path, required=True)


def handlers(config_for: ConfigFor) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Return the command handlers, given how the CLI resolves a config."""
    return {"identity": lambda args: cmd_identity(config_for(args)),
            "sync": lambda args: cmd_sync(config_for(args), now=args.now),
            "receiver": cmd_receiver}


def cmd_identity(config: Config) -> int:
    """Print the device public key (made on first use) as the last line."""
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    identity = DeviceIdentity.load_or_create(config.state_dir)
    print(f"Device public key of stall {config.sync_stall_id!r}; enrol it with")
    print(f"  stallbox receiver enroll --stall {config.sync_stall_id} "
          "--public-key KEY --data DIR")
    print(identity.enrolment_key())
    return 0


# -- stallbox sync ---------------------------------------------------------------


def cmd_sync(config: Config, *, now: bool) -> int:
    """Show sync status; with now, sync and follow the progress to the end."""
    if not config.sync_url:
        raise ConfigError("sync.url", "is not set; nothing to sync to")
    try:
        with state_lock(config.state_dir):
            status = asyncio.run(_offline_sync(config, now))
    except StateLocked:
        status = _follow_daemon(config, now)
    print(_summary(status))
    return 0 if status["state"] in ("idle", "syncing") else 1


def _follow_daemon(config: Config, now: bool) -> dict[str, Any]:
    status = ask_daemon(config.state_dir, {"op": "sync_now" if now else "sync_status"})
    rounds = status.get("rounds_started", 0)
    while now and (status["state"] == "syncing" or status["rounds"] < rounds):
        _progress(status)
        time.sleep(PROGRESS_INTERVAL_S)
        status = ask_daemon(config.state_dir, {"op": "sync_status"})
    return status


async def _offline_sync(config: Config, now: bool) -> dict[str, Any]:
    from sync.service import make_worker

    path = config.state_dir / JOURNAL_FILE
    journal = await asyncio.to_thread(Journal.open, path)
    worker = await make_worker(config, journal)
    try:
        await worker.start()
        if not now:
            return worker.state_dict()
        round_done = worker.sync_now()
        while not round_done.done():
            _progress(worker.state_dict())
            await asyncio.wait([round_done], timeout=PROGRESS_INTERVAL_S)
        return round_done.result()
    finally:
        await worker.stop()
        await journal.close()


def _progress(status: dict[str, Any]) -> None:
    eta = f", ETA {status['eta_s']:.0f} s" if status.get("eta_s") is not None else ""
    line = (f"sync: {status['backlog']} events, "
            f"{status['bytes_remaining'] / 1e6:.1f} MB left, "
            f"{status['rate_eps']:.0f} events/s{eta}")
    end = "\r" if sys.stdout.isatty() else "\n"
    print(line.ljust(72), end=end, flush=True)


def _summary(status: dict[str, Any]) -> str:
    lines = [f"sync {status['state']}: acknowledged up to seq {status['acked_seq']},"
             f" {status['backlog']} events waiting"]
    if status.get("last_success"):
        lines.append(f"last success: {status['last_success']}")
    if status.get("last_error"):
        lines.append(f"last error: {status['last_error']}")
    if status.get("next_attempt"):
        lines.append(f"next attempt: {status['next_attempt']}")
    if status["state"] == "parked":
        lines.append("fix the cause, then run `stallbox sync --now` to retry")
    return "\n".join(lines)


def control_ops(box: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The control-socket requests `stallbox sync` sends to a running daemon."""

    def worker() -> Any:
        if box.sync is None:
            raise ConfigError("sync.url", "is not set in the daemon's config")
        return box.sync

    async def sync_now(_: dict[str, Any]) -> dict[str, Any]:
        w = worker()
        w.retry()  # a person asked: unpark, and join a running round
        return {**w.state_dict(), "rounds_started": w.status.rounds + 1}

    async def sync_status(_: dict[str, Any]) -> dict[str, Any]:
        return worker().state_dict()

    return {"sync_now": sync_now, "sync_status": sync_status}


# -- stallbox receiver -----------------------------------------------------------


def cmd_receiver(args: argparse.Namespace) -> int:
    """Run the receiver, or enrol, issue a token for or revoke a stall."""
    from sync.receiver import admin

    command = args.receiver_command
    if command == "enroll":
        admin.enroll(args.data, args.stall, args.public_key)
        print(f"stall {args.stall} enrolled")
    elif command == "enroll-token":
        print(admin.enrolment_token(args.data, args.stall, args.ttl_s))
    elif command == "revoke":
        admin.revoke(args.data, args.stall)
        print(f"stall {args.stall} revoked")
    else:
        asyncio.run(_serve_receiver(args.host, args.port, args.data, args.rate))
    return 0


async def _serve_receiver(host: str, port: int, data: Path, rate: float) -> None:
    from aiohttp import web

    from sync.receiver.app import create_receiver_app
    from sync.receiver.sqlite_store import SqliteStorage

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    storage = await asyncio.to_thread(SqliteStorage.in_dir, data)
    runner = web.AppRunner(create_receiver_app(storage, rate_per_s=rate),
                           handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        _LOG.info("receiver serving on http://%s:%d/ (data in %s)", host, bound, data)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
