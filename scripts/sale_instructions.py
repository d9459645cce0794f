"""Count the instructions one cash sale costs the journal writer (cachegrind).

Runs ``create_sale`` through ``Journal.transact`` (the live-price hook on, no
app, no timers) twice under ``valgrind --tool=cachegrind``, with a few sales
and with ``--sales`` more, and prints the difference per sale: start-up and
the catalog import cancel out. Instruction counts do not depend on the load of
the box, so a change can be compared with one run on each side.

    python scripts/sale_instructions.py [--sales 500]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CATALOG = (b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
           b"SEIFE,Seife,\"5,90\",standard\n")
LINES = (("TEE", 2), ("SEIFE", 1))  # the sale of scripts/bench.py
BASE_SALES = 50


async def _sell(count: int) -> None:
    from daemon.catalog.apply import apply_import
    from daemon.catalog.importer import parse_catalog
    from daemon.config import parse_config
    from daemon.journal.store import Journal
    from daemon.live.board import LiveBoard
    from daemon.live.pricing import LivePricing
    from daemon.sales.service import SaleRequest, create_sale

    with tempfile.TemporaryDirectory(prefix="stallbox-count-") as tmp:
        root = Path(tmp)
        config = parse_config({"stall": {"name": "Count"},
                               "state": {"dir": str(root / "state")}},
                              base_dir=root)
        journal = Journal.open(root / "state" / "journal.db")
        parsed = parse_catalog(CATALOG, currency=config.stall.currency)
        await journal.transact(lambda tx: apply_import(tx, parsed,
                                                       skip_invalid=False))
        prices = LivePricing(LiveBoard())
        for _ in range(count):
            request = SaleRequest(uuid.uuid4().hex, LINES, 2000)
            await journal.transact(lambda tx, r=request: create_sale(
                tx, r, config.stall, config.billing, prices))
        await journal.close()


def _instructions(count: int) -> int:
    """Return the instructions of a whole run selling count sales."""
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no",
             f"--cachegrind-out-file={tmp}/out", sys.executable, __file__,
             "--child", str(count)],
            capture_output=True, text=True, check=True, cwd=REPO)
    match = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if match is None:
        raise RuntimeError("no instruction count in valgrind's output")
    return int(match.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=500)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        asyncio.run(_sell(args.child))
        return 0
    few = _instructions(BASE_SALES)
    many = _instructions(BASE_SALES + args.sales)
    print(f"{(many - few) / args.sales / 1e6:.3f} M instructions per sale "
          f"(create_sale in the writer, {args.sales} sales)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
