"""`stallbox print-setup`: a slip with the till's IP URL and a QR code of it.

Android tablets often cannot resolve `.local` names, so the slip (and the
printer page) give the address as an IP. The daemon owns the printer, so the
CLI asks it over the control socket; the slip prints between receipts and is
not journaled (it records nothing about a sale).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Callable, Sequence
from typing import Any

from daemon.config import Config
from daemon.control import ask_daemon
from daemon.errors import RetryLaterError
from daemon.runtime import Stallbox
from daemon.sales.receipt import LayoutLine
from device.printer.escpos import encode_lines, load_in_thread

WILDCARDS = ("0.0.0.0", "::", "")


def till_urls(host: str, port: int, scheme: str = "http") -> list[str]:
    """Return the URLs tablets can open: the bound address, or every LAN one."""
    if host not in WILDCARDS:
        addresses = [host]
    else:
        # Imported here: ifaddr and zeroconf (discovery) cost start-up time.
        import ifaddr

        from daemon.discovery import allowed_addresses

        addresses = allowed_addresses(ifaddr.get_adapters(), []) or ["127.0.0.1"]
    ordered = sorted(addresses, key=lambda a: ipaddress.ip_address(a).version)
    return [f"{scheme}://{_bracket(a)}:{port}/" for a in ordered]


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def slip_lines(stall_name: str, urls: Sequence[str], columns: int) -> list[LayoutLine]:
    """Lay out the setup slip: who, where to point a tablet, how to pair."""
    center = columns
    lines = [LayoutLine(stall_name[:columns].center(center), bold=True,
                        centered=True),
             LayoutLine("Till setup".center(center), centered=True),
             LayoutLine(""),
             LayoutLine("Open on the tablet:")]
    lines += [LayoutLine(url[:columns]) for url in urls]
    lines += [LayoutLine(""),
              LayoutLine("Then enter a pairing code from"),
              LayoutLine("`stallbox pair` on this box.", qr=urls[0])]
    return lines


def control_ops(box: Stallbox) -> dict[str, Callable[[dict[str, Any]],
                                                     Any]]:
    """The control request that prints the slip in the running daemon."""

    async def print_setup(_: dict[str, Any]) -> dict[str, Any]:
        printer, settings = box.printer, box.config.printer
        if printer is None or settings is None:
            raise RetryLaterError("no printer is configured ([printer] port)")
        port = box.bound_port or box.config.port
        urls = await asyncio.to_thread(till_urls, box.config.host, port)
        lines = slip_lines(box.config.stall.name, urls, settings.columns)
        await load_in_thread()
        printer.print_slip(encode_lines(lines, settings))
        return {"urls": urls}

    return {"print_setup": print_setup}


def add_commands(sub: Any, state_args: Callable[[argparse.ArgumentParser], None]
                 ) -> None:
    """Add `print-setup` to the CLI."""
    parser = sub.add_parser("print-setup", help="print a slip with the till's IP "
                            "URL and a QR code of it (asks the running daemon)")
    state_args(parser)


def handlers(config_for: Callable[[argparse.Namespace], Config]
             ) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Map the sub-command to its handler."""

    def print_setup(args: argparse.Namespace) -> int:
        reply = ask_daemon(config_for(args).state_dir, {"op": "print_setup"})
        for url in reply["urls"]:
            print(url)
        print("setup slip sent to the printer", file=sys.stderr)
        return 0

    return {"print-setup": print_setup}
