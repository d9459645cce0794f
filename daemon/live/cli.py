"""`stallbox integration add NAME`: a live-stream integration and its secret."""

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


def add_commands(sub: Any, state_args: StateArgs) -> None:
    """Add the `integration` command group to the CLI."""
    group = sub.add_parser("integration", help="manage live-stream integrations")
    actions = group.add_subparsers(dest="integration_command", required=True)
    add = actions.add_parser("add", help="create an integration; prints its "
                             "webhook secret as the last line")
    add.add_argument("name")
    state_args(add)


def handlers(config_for: ConfigFor) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Return the CLI handlers by command name."""
    return {"integration": lambda args: cmd_integration(config_for(args), args)}


def cmd_integration(config: Config, args: argparse.Namespace) -> int:
    """Add an integration through the running daemon, or offline if none runs."""
    try:
        with state_lock(config.state_dir):
            secret = asyncio.run(_offline_add(config, args.name))
    except StateLocked:
        secret = ask_daemon(config.state_dir, {"op": ADD_OP, "name": args.name})[
            "secret"]
    print(f"Integration {args.name!r} added. Sign each webhook with this secret "
          "(shown once):")
    print(secret)
    return 0


async def _offline_add(config: Config, name: str) -> str:
    from daemon.live.service import add_integration
    from daemon.runtime import Stallbox

    box = Stallbox(config)
    await box.open()
    try:
        return await add_integration(box, name)
    finally:
        await box.stop()


def control_ops(box: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Return the control-socket operations of live selling."""
    from daemon.live.service import live_for

    async def add(request: dict[str, Any]) -> dict[str, Any]:
        secret = await live_for(box).add_integration(str(request.get("name", "")))
        return {"secret": secret}

    return {ADD_OP: add}
