"""Count the instructions one cash sale request costs the whole daemon (cachegrind).

Starts ``stallbox serve`` under ``valgrind --tool=cachegrind`` on a loopback
port, pairs it and imports the bench's catalog with the CLI, drives sales with
the lean keep-alive HTTP/1.1 client of ``scripts/bench.py`` (in this process,
not counted), stops the daemon with SIGTERM and reads its instruction total.
It does that twice, with a few sales and with ``--sales`` more, and prints the
difference per sale: start-up, pairing, the import and the shutdown cancel
out; HTTP parsing, the middlewares, the body check, the writer thread, the
answer and the event loop's wake-ups stay in. Instruction counts do not depend
on the load of the box, so a change can be compared with one run on each side
(timers the daemon runs while it waits add a little: a run is slower under
valgrind, ≈ 0.01 M per sale here).

    python scripts/request_instructions.py [--sales 400] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench import CATALOG, _lean_client_loop  # noqa: E402
from scripts.daemonproc import DaemonProcess, write_config  # noqa: E402

BASE_SALES = 40
READY_TIMEOUT_S = 180.0


async def _sell(url: str, token: str, clients: int, sales: int) -> None:
    share, rest = divmod(sales, clients)
    await asyncio.gather(*(_lean_client_loop(url + "api/v1/sales", token,
                                             share + (i < rest), [])
                           for i in range(clients)))


def _instructions(sales: int, clients: int) -> int:
    """Return the daemon's instructions over a whole run selling `sales` sales."""
    with tempfile.TemporaryDirectory(prefix="stallbox-count-") as tmp:
        root = Path(tmp)
        state = root / "state"
        config = write_config(root / "stallbox.toml", state)
        out = root / "cachegrind.out"
        daemon = DaemonProcess(config, ready_timeout_s=READY_TIMEOUT_S, wrapper=(
            "valgrind", "--tool=cachegrind", "--cache-sim=no",
            f"--cachegrind-out-file={out}"))
        try:
            token = daemon.stock_and_pair(state, CATALOG, name="count", timeout_s=120)
            asyncio.run(_sell(daemon.url, token, clients, sales))
        finally:
            daemon.terminate(timeout_s=300)
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("no summary in cachegrind's output:\n"
                               + "".join(daemon.log[-30:]))
        return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=400)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict layouts each run
    start = time.monotonic()
    few = _instructions(BASE_SALES, args.clients)
    many = _instructions(BASE_SALES + args.sales, args.clients)
    print(f"{(many - few) / args.sales / 1e6:.3f} M instructions per sale request "
          f"(whole daemon, {args.clients} clients, {args.sales} sales; "
          f"{time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
