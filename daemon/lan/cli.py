"""`stallbox manager-pin` and `stallbox tablets`: the LAN's commands on the box.

Both reach the running daemon through the control socket (mode 0600, so only
the service user can ask) or, when no daemon runs, take the state lock and
write the journal themselves for their short run.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from daemon.config import Config
from daemon.control import StateLocked, ask_daemon, state_lock
from daemon.errors import InputError
from daemon.lan.pin import check_pin_format

StateArgs = Callable[[argparse.ArgumentParser], None]
ConfigFor = Callable[[argparse.Namespace], Config]
Work = Callable[[Any], Awaitable[dict[str, Any]]]
BY_CLI = "stallbox manager-pin"


def add_commands(sub: Any, state_args: StateArgs) -> None:
    """Add the manager-pin and tablets sub-commands."""
    pin = sub.add_parser("manager-pin", help="set the manager PIN (6 to 12 digits) "
                         "that unlocks refunds, voids, closing and settings")
    pin.add_argument("--pin-stdin", action="store_true",
                     help="read the PIN from one line of stdin instead of asking")
    state_args(pin)
    tablets = sub.add_parser("tablets", help="list paired tablets, or revoke one")
    tablets.add_argument("--revoke", type=int, metavar="SEQ", default=None,
                         help="revoke the tablet paired at this journal seq")
    state_args(tablets)


def handlers(config_for: ConfigFor) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Return the handlers of this module's sub-commands."""
    return {"manager-pin": lambda args: cmd_manager_pin(config_for(args), args),
            "tablets": lambda args: cmd_tablets(config_for(args), args)}


def read_pin(args: argparse.Namespace) -> str:
    """Ask for the new PIN twice on a terminal, or read one line from stdin."""
    if args.pin_stdin or not sys.stdin.isatty():
        return check_pin_format(sys.stdin.readline())
    first = check_pin_format(getpass.getpass("New manager PIN (6-12 digits): "))
    if getpass.getpass("Same PIN again: ").strip() != first:
        raise InputError("the two PINs differ; nothing changed")
    return first


def cmd_manager_pin(config: Config, args: argparse.Namespace) -> int:
    """Set the manager PIN in the running daemon, or offline."""
    pin = read_pin(args)

    async def offline(box: Any) -> dict[str, Any]:
        await box.lan.set_pin(pin, BY_CLI)
        return {}

    _daemon_or_offline(config, {"op": "manager_pin", "pin": pin}, offline)
    print("Manager PIN set. Tablets in manager mode have left it.")
    return 0


def cmd_tablets(config: Config, args: argparse.Namespace) -> int:
    """List tablets, or revoke one by its pairing seq."""
    async def offline(box: Any) -> dict[str, Any]:
        return await _tablets_op(box, args.revoke)

    reply = _daemon_or_offline(config, {"op": "tablets", "revoke": args.revoke},
                               offline)
    for tablet in reply["items"]:
        print(f"{tablet['seq']:>8}  {tablet['state']:<8}  {tablet['paired_at']}  "
              f"{tablet['name']}")
    return 0


def _daemon_or_offline(config: Config, request: dict[str, Any],
                       offline: Work) -> dict[str, Any]:
    try:
        with state_lock(config.state_dir):
            return asyncio.run(_run_offline(config, offline))
    except StateLocked:
        return ask_daemon(config.state_dir, request)


async def _run_offline(config: Config, work: Work) -> dict[str, Any]:
    from daemon.runtime import Stallbox  # imports the whole daemon

    box = Stallbox(config)
    await box.open()
    try:
        return await work(box)
    finally:
        await box.stop()


async def _tablets_op(box: Any, revoke: int | None) -> dict[str, Any]:
    if revoke is not None:
        await box.lan.revoke(int(revoke), "stallbox tablets")
    return {"items": await box.lan.tablets(box.reader)}


def control_ops(box: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The control-socket requests of this module."""
    async def manager_pin(request: dict[str, Any]) -> dict[str, Any]:
        await box.lan.set_pin(str(request.get("pin", "")), BY_CLI)
        return {}

    async def tablets(request: dict[str, Any]) -> dict[str, Any]:
        revoke = request.get("revoke")
        if revoke is not None and not isinstance(revoke, int):
            raise InputError("revoke must be a journal seq")
        return await _tablets_op(box, revoke)

    return {"manager_pin": manager_pin, "tablets": tablets}
