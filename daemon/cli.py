"""The `stallbox` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from daemon import _startup, setup_slip  # _startup first: it tunes the GC
from daemon.config import Config, ConfigError, load_config, parse_config
from daemon.control import StateLocked, ask_daemon, encode_file, state_lock
from daemon.errors import StallboxError
from daemon.keys.epoch import certified_stall_id
from daemon.lan import cli as lan_cli
from daemon.live import cli as live_cli
from daemon.runtime import JOURNAL_FILE, Stallbox, import_summary
from daemon.trust import cli as trust_cli
from sync import cli as sync_cli

_LOG = logging.getLogger(__name__)
EXIT_USAGE = 2
DEFAULT_STATE = Path("/var/lib/stallbox")
T = TypeVar("T")
# Commands that only read the journal: they open it whatever stall id it carries.
READ_ONLY_COMMANDS = frozenset({"verify", "export", "verify-receipt"})


def _setup_logging(level: str) -> None:
    from daemon.ops import logfmt  # one logfmt line per event (#7)

    logfmt.setup(getattr(logging, level.upper(), logging.INFO))


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-command per contract command."""
    parser = argparse.ArgumentParser(prog="stallbox", description=(
        "Point-of-sale appliance for pop-up stalls."))
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the daemon with a demo catalog and a "
                          "simulated printer on a pseudo-terminal")
    demo.add_argument("--state", type=Path, default=None,
                      help="state dir (default: ./stallbox-demo)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    serve = sub.add_parser("serve", help="run the daemon from a TOML config")
    serve.add_argument("--config", type=Path, required=True)
    pair = sub.add_parser("pair", help="issue a one-time pairing code for a tablet")
    _state_args(pair)
    imp = sub.add_parser("import-catalog", help="import a shop's product export CSV")
    imp.add_argument("file", type=Path)
    imp.add_argument("--skip-invalid", action="store_true",
                     help="import the valid rows and report the rest")
    imp.add_argument("--include-inactive", action="store_true",
                     help="also import draft and archived products")
    _state_args(imp)
    verify = sub.add_parser("verify", help="check the journal read-only: chain, "
                            "certificates, seals, read models")
    _state_args(verify)
    trust_cli.verify_args(verify)
    trust_cli.add_commands(sub, _state_args)
    export = sub.add_parser("export", help="write the journal's events as JSON lines")
    _state_args(export)
    export.add_argument("--after-seq", type=int, default=0)
    sync_cli.add_commands(sub, _state_args)
    live_cli.add_commands(sub, _state_args)
    setup_slip.add_commands(sub, _state_args)
    lan_cli.add_commands(sub, _state_args)
    return parser


def _state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, default=None,
                        help="state dir (default: from --config, else "
                        f"{DEFAULT_STATE})")
    parser.add_argument("--config", type=Path, default=None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command and return its exit code."""
    args = build_parser().parse_args(argv)
    if args.command not in ("serve", "demo"):  # those settle once ready
        _startup.settle()
    _setup_logging(args.log_level)
    # The state dir holds every sale, keys and tokens: nothing it creates is for
    # other local users (systemd's UMask= says the same for the service).
    os.umask(0o077)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": _cmd_demo, "serve": _cmd_serve, "pair": _cmd_pair,
        "import-catalog": _cmd_import, "verify": _cmd_verify, "export": _cmd_export,
        **sync_cli.handlers(_config_for),
        **live_cli.handlers(_config_for),
        **setup_slip.handlers(_config_for),
        **trust_cli.handlers(_config_for),
        **lan_cli.handlers(_config_for),
    }
    try:
        return handlers[args.command](args)
    except ConfigError as err:
        print(f"stallbox: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StallboxError as err:
        print(f"stallbox: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a path or port the system refused: say which
        where = f" ({err.filename})" if err.filename else ""
        print(f"stallbox: {err.strerror or err}{where}", file=sys.stderr)
        return 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from daemon.server import serve

    config = load_config(args.config)
    check_stall_id(config)
    asyncio.run(serve(config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from daemon.demo import demo_config, run_demo

    state = args.state or Path.cwd() / "stallbox-demo"
    check_stall_id(demo_config(state.resolve(), args.host, 0, "/dev/null"))
    asyncio.run(run_demo(state, args.host, args.port))
    return 0


def _config_for(args: argparse.Namespace) -> Config:
    """Return --config (its state dir replaced by --state), else the defaults.

    Without --config the stall id is the one the journal already carries (a
    new journal gets "stall-1"); with it, a command that may write refuses a
    journal certified for another stall id (exit 2).
    """
    if args.config is not None:
        config = load_config(args.config)
        if args.state is not None:
            config = dataclasses.replace(config, state_dir=args.state.resolve())
    else:
        state = (args.state or DEFAULT_STATE).resolve()
        stall: dict[str, str] = {"name": "Stallbox"}
        found = certified_stall_id(state / JOURNAL_FILE)
        if found is not None:
            stall["id"] = found
        try:
            config = parse_config({"stall": stall, "state": {"dir": str(state)}},
                                  base_dir=Path("/"))
        except ConfigError:  # an id this version would not accept: say so below
            config = parse_config({"stall": {"name": "Stallbox"},
                                   "state": {"dir": str(state)}}, base_dir=Path("/"))
    if args.command not in READ_ONLY_COMMANDS:
        check_stall_id(config)
    return config


def check_stall_id(config: Config) -> None:
    """Refuse to sign a journal whose certificates name another stall id.

    Every start certifies a new epoch key with [stall] id; a journal whose
    certificates then change id fails `stallbox verify` and the receiver's
    check for good. Read before anything binds or opens the journal to write.
    """
    found = certified_stall_id(config.state_dir / JOURNAL_FILE)
    if found is None or found == config.stall.stall_id:
        return
    where = "the config" if config.source == "<dict>" else config.source
    raise ConfigError("stall.id", (
        f"is {config.stall.stall_id!r}, but the journal in {config.state_dir} "
        f"belongs to stall {found[:64]!r}; set [stall] id = \"{found[:64]}\" in "
        f"{where}, or use a new [state] dir for a new stall"))


def _with_daemon_or_journal(
        config: Config, request: dict[str, Any],
        offline: Callable[[Stallbox], Awaitable[T]]) -> T | dict[str, Any]:
    """Ask the running daemon; if none runs, become the only writer briefly."""
    try:
        with state_lock(config.state_dir):
            return asyncio.run(_offline(config, offline))
    except StateLocked:
        return ask_daemon(config.state_dir, request)


async def _offline(config: Config, work: Callable[[Stallbox], Awaitable[T]]) -> T:
    box = Stallbox(config)
    await box.open()
    try:
        return await work(box)
    finally:
        await box.stop()


def _cmd_pair(args: argparse.Namespace) -> int:
    config = _config_for(args)
    _require_stall(config)

    async def offline(box: Stallbox) -> dict[str, Any]:
        return {"code": await box.issue_pairing_code()}

    reply = _with_daemon_or_journal(config, {"op": "pair"}, offline)
    ttl_min = config.pairing_code_ttl_s // 60
    print(f"Pairing code (valid {ttl_min} minutes, one use):")
    print(reply["code"])
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    config = _config_for(args)
    try:
        data = args.file.read_bytes()
    except OSError as err:
        print(f"stallbox: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 1
    request = {"op": "import_catalog", "data": encode_file(data),
               "skip_invalid": args.skip_invalid,
               "include_inactive": args.include_inactive}

    async def offline(box: Stallbox) -> dict[str, Any]:
        return await import_summary(box, data, skip_invalid=args.skip_invalid,
                                    include_inactive=args.include_inactive)

    reply = _with_daemon_or_journal(config, request, offline)
    for row, reason in reply["rejected"]:
        print(f"row {row}: rejected: {reason}", file=sys.stderr)
    if reply["refused"]:
        print(f"stallbox: {reply['detail']}", file=sys.stderr)
        print("nothing imported; fix the rows or pass --skip-invalid",
              file=sys.stderr)
        return 1
    print(f"{reply['format']}: {reply['imported']} products, {reply['changed']} "
          f"changed, {reply['skipped']} skipped, {len(reply['rejected'])} rejected")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    return trust_cli.cmd_verify(args, _config_for(args))


def _require_stall(config: Config) -> None:
    """Refuse to start a new stall by accident (a mistyped --state)."""
    if not (config.state_dir / JOURNAL_FILE).exists():
        raise StallboxError(f"no stall at {config.state_dir} (no journal there); "
                            "check --state or --config, or start the daemon first")


def _cmd_export(args: argparse.Namespace) -> int:
    from daemon.journal.verify import open_readonly

    config = _config_for(args)
    _require_stall(config)
    conn = open_readonly(config.state_dir / JOURNAL_FILE)
    try:
        rows = conn.execute("SELECT seq, body, hash FROM events WHERE seq > ?"
                            " ORDER BY seq", (args.after_seq,))
        for seq, body, digest in rows:
            record = {"seq": seq, "hash": bytes(digest).hex(),
                      "event": json.loads(body)}
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `stallbox export | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
