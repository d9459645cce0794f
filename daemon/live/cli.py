"""`stallbox integration add|rotate|remove NAME`: live-stream integrations."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from daemon.config import Config
from daemon.control import StateLocked, ask_daemon, state_lock

ConfigFor = Callable[[argparse.Namespace], Config]
StateArgs = Callable[[argparse.ArgumentParser], None]
ADD_OP = "live_integration_add"
ROTATE_OP = "live_integration_rotate"
REMOVE_OP = "live_integration_remove"
OPS = {"add": ADD_OP, "rotate": ROTATE_OP, "remove": REMOVE_OP}


def add_commands(sub: Any, state_args: StateArgs) -> None:
    """Add the `integration` command group to the CLI."""
    group = sub.add_parser("integration", help="manage live-stream integrations")
    actions = group.add_subparsers(dest="integration_command", required=True)
    add = actions.add_parser("add", help="create an integration; prints its "
                             "webhook secret as the last line")
    add.add_argument("name")
    state_args(add)
    rotate = actions.add_parser("rotate", help="give an integration a new secret "
                                "(the old one stops working); prints it last")
    rotate.add_argument("name")
    state_args(rotate)
    remove = actions.add_parser("remove", help="remove an integration: its "
                                "webhooks are refused from then on")
    remove.add_argument("name")
    state_args(remove)


def handlers(config_for: ConfigFor) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Return the CLI handlers by command name."""
    return {"integration": lambda args: cmd_integration(config_for(args), args)}


def cmd_integration(config: Config, args: argparse.Namespace) -> int:
    """Change integrations through the running daemon, or offline if none runs."""
    action = args.integration_command
    try:
        with state_lock(config.state_dir):
            secret = asyncio.run(_offline(config, action, args.name))
    except StateLocked:
        secret = ask_daemon(config.state_dir, {"op": OPS[action],
                                               "name": args.name}).get("secret")
    if action == "remove":
        print(f"Integration {args.name!r} removed; its webhooks are refused.")
        return 0
    done = "added" if action == "add" else "has a new secret"
    print(f"Integration {args.name!r} {done}. Sign each webhook with this secret "
          "(shown once):")
    print(secret)
    return 0


async def _offline(config: Config, action: str, name: str) -> str | None:
    from daemon.live import service
    from daemon.runtime import Stallbox

    box = Stallbox(config)
    await box.open()
    try:
        if action == "add":
            return await service.add_integration(box, name)
        if action == "rotate":
            return await service.rotate_integration(box, name)
        await service.remove_integration(box, name)
        return None
    finally:
        await box.stop()


def control_ops(box: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Return the control-socket operations of live selling."""
    from daemon.live.service import live_for

    async def add(request: dict[str, Any]) -> dict[str, Any]:
        secret = await live_for(box).add_integration(str(request.get("name", "")))
        return {"secret": secret}

    async def rotate(request: dict[str, Any]) -> dict[str, Any]:
        secret = await live_for(box).rotate_integration(str(request.get("name", "")))
        return {"secret": secret}

    async def remove(request: dict[str, Any]) -> dict[str, Any]:
        await live_for(box).remove_integration(str(request.get("name", "")))
        return {}

    return {ADD_OP: add, ROTATE_OP: rotate, REMOVE_OP: remove}
