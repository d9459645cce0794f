"""Trust sub-commands: verify (extended), verify-receipt and identity."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from daemon.config import Config
from daemon.journal.verify import (
    VerifyResult,
    WalkIncomplete,
    open_readonly,
    verify_journal,
)
from daemon.keys.device import DEVICE_KEY_FILE, DeviceIdentity
from daemon.keys.epoch import unb64
from daemon.trust.excerpt import ExcerptError, parse_excerpt
from daemon.trust.receipts import EpochBook, check_receipt, journal_stall_id
from daemon.trust.replay import replay_observers

JOURNAL_FILE = "journal.sqlite3"
ConfigFor = Callable[[argparse.Namespace], Config]
StateArgs = Callable[[argparse.ArgumentParser], None]


def verify_args(parser: argparse.ArgumentParser) -> None:
    """Add the trust options of `stallbox verify`."""
    parser.add_argument("--device-key", default=None, metavar="BASE64",
                        help="the enrolled device public key (default: the one "
                        "in the state dir)")
    parser.add_argument("--no-replay", action="store_true",
                        help="skip comparing read models with a replay (faster; "
                        "chain, certificates and seals are still checked)")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 state_args: StateArgs) -> None:
    """Add verify-receipt (`identity` lives in sync.cli)."""
    receipt = sub.add_parser("verify-receipt", help="check a receipt's QR text "
                             "against this stall's journal")
    receipt.add_argument("text", help="the text of the receipt's QR code")
    state_args(receipt)
    verify_args(receipt)


def handlers(config_for: ConfigFor) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Return the handlers of the commands add_commands added."""
    return {"verify-receipt": lambda a: cmd_verify_receipt(a, config_for(a))}


def device_public(args: argparse.Namespace, state_dir: Path) -> bytes | None:
    """Return the device public key from --device-key or the state dir, read-only."""
    if args.device_key:
        try:
            key = unb64(args.device_key)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise SystemExit("stallbox: --device-key is not a 32-byte base64 key")
        return key
    if not (state_dir / DEVICE_KEY_FILE).exists():
        return None
    return DeviceIdentity.load_or_create(state_dir).public_bytes


EXIT_INCOMPLETE = 3  # 0 intact, 1 broken, 2 usage or config


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    """Walk the journal: chain, certificates, seals, read models; exit 1 on a
    fault, EXIT_INCOMPLETE when the walk could not finish."""
    state = config.state_dir
    observers = [] if getattr(args, "no_replay", False) else replay_observers()
    try:
        result = verify_journal(state / JOURNAL_FILE, device_public(args, state),
                                observers=observers)
    except WalkIncomplete as err:
        print(f"stallbox verify: could not finish: {err}; nothing was found wrong "
              "so far, nothing is proved either: run it again", file=sys.stderr)
        return EXIT_INCOMPLETE
    for warning in result.warnings:
        print(f"warning: {warning}")
    if not result.ok:
        print(f"journal BROKEN at seq {result.bad_seq}: {result.reason}")
        return 1
    print(summary(result, replayed=bool(observers)))
    return 0


def summary(result: VerifyResult, *, replayed: bool) -> str:
    """Describe an intact journal in one line."""
    tail = "; read models match a replay" if replayed else ""
    return (f"journal intact: {result.events} events, head seq {result.head_seq}, "
            f"{result.epochs} epochs, {result.seals} seals (sealed through seq "
            f"{result.sealed_seq}){tail}")


def cmd_verify_receipt(args: argparse.Namespace, config: Config) -> int:
    """Check one receipt excerpt; exit 0 when genuine, 1 when not."""
    book = EpochBook(device_public(args, config.state_dir))
    conn = open_readonly(config.state_dir / JOURNAL_FILE)
    try:
        verdict = check_receipt(conn, args.text, book,
                                _stall_id(args, config, conn, args.text))
    except ExcerptError as err:
        print(f"NOT GENUINE: {err.detail}")
        return 1
    finally:
        conn.close()
    print(("GENUINE: " if verdict.genuine else "NOT GENUINE: ") + verdict.reason)
    return 0 if verdict.genuine else 1


def _stall_id(args: argparse.Namespace, config: Config, conn: sqlite3.Connection,
              text: str) -> str:
    """Return the stall id a receipt must name: the config's, else the journal's.

    With --state alone there is no config to name the stall, so the id the
    journal's epoch certificates carry is the stall's (the default stall id
    only for a journal that never signed).
    """
    if getattr(args, "config", None) is not None:
        return config.stall.stall_id
    found = journal_stall_id(conn, parse_excerpt(text).epoch)
    return found if found is not None else config.stall.stall_id
