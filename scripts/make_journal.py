#!/usr/bin/env python3
"""Fill a state dir with a big, real, signed journal of cash sales, fast.

    python scripts/make_journal.py STATE_DIR --sales 1000000

The journal is made by the daemon's own code: Stallbox opens the state dir
(device key, first epoch), the demo catalog's two products are imported, and
every sale goes through the journal writer (Tx.append, seals every
transaction) and the sale service's own read-model writes and receipt
excerpt signature. Only the pricing is done once: each further sale is the
first one's event data with a new id, client_ref and local time, which keeps
the build at a few thousand sales per second instead of a few hundred
(``--priced`` prices every sale, as the till does). ``--varied`` sells random
baskets of the 31-product demo catalog, each priced: a journal whose sales
differ as a market day's do (a few hundred sales per second). Used by
``scripts/bench.py trust`` and by anyone who needs a big journal (start time,
sync backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CATALOG = (b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
           b"SEIFE,Seife,\"5,90\",standard\n")
LINES = (("TEE", 2), ("SEIFE", 1))
PER_TRANSACTION = 1000  # the writer seals at least every 1000 events anyway


DEMO_CATALOG = REPO / "daemon" / "catalog" / "demo.csv"


async def build_journal(state: Path, sales: int, *, per_tx: int = PER_TRANSACTION,
                        priced: bool = False, varied: bool = False,
                        progress: bool = False) -> int:
    """Append `sales` cash sales to the journal in state; return the head seq."""
    from daemon.config import parse_config
    from daemon.runtime import Stallbox

    config = parse_config({"stall": {"name": "Bench"}, "state": {"dir": str(state)}},
                          base_dir=Path("/"))
    box = Stallbox(config)
    await box.open()
    catalog = DEMO_CATALOG.read_bytes() if varied else CATALOG
    await box.import_catalog(catalog, skip_invalid=False)
    template: dict[str, Any] = {}
    if varied:
        skus = [line.split(",")[0] for line in catalog.decode().splitlines()[1:]]
        template["baskets"] = random.Random(6), skus
    start, done = time.perf_counter(), 0
    try:
        while done < sales:
            count = min(per_tx, sales - done)
            await box.journal.transact(
                lambda tx, n=count: _batch(tx, n, config, template, priced))
            done += count
            if progress and done % (per_tx * 50) == 0:
                rate = done / (time.perf_counter() - start)
                print(f"{done} sales, {rate:.0f}/s", file=sys.stderr)
        return box.journal.head_seq
    finally:
        await box.stop()


def _batch(tx: Any, count: int, config: Any, template: dict[str, Any],
           priced: bool) -> None:
    from daemon.sales.service import SaleRequest, create_sale

    for _ in range(count):
        if "baskets" in template:
            rng, skus = template["baskets"]
            lines = tuple((sku, rng.randint(1, 3))
                          for sku in rng.sample(skus, rng.randint(1, 4)))
            create_sale(tx, SaleRequest(uuid.uuid4().hex, lines, 1_000_000),
                        config.stall, config.billing)
        elif priced or not template:
            request = SaleRequest(uuid.uuid4().hex, LINES, 2000)
            outcome = create_sale(tx, request, config.stall, config.billing)
            template.update(_template(tx, outcome.sale["seq"]))
        else:
            _repeat_sale(tx, template, config.stall.stall_id)
    tx.force_seal()


def _template(tx: Any, seq: int) -> dict[str, Any]:
    """Return the data of the sale event at seq (its receipt needs nothing else)."""
    from daemon.journal.canonical import parse_canonical

    body = tx.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()[0]
    return {"data": parse_canonical(bytes(body))["data"]}


def _repeat_sale(tx: Any, template: dict[str, Any], stall_id: str) -> None:
    """Journal the template sale again as a new sale, as create_sale writes one."""
    from daemon.sales.service import _write_read_models, new_sale_id
    from daemon.trust.excerpt import sale_excerpt

    local_time = datetime.now().astimezone().strftime("%d.%m.%Y %H:%M")
    data = {**template["data"], "id": new_sale_id(tx), "client_ref": uuid.uuid4().hex,
            "local_time": local_time}
    event = tx.append("sale.completed", data)
    _write_read_models(tx, data, event.seq, event.ts,
                       {"excerpt": sale_excerpt(tx, stall_id, event)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path, help="state dir (made if missing)")
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--per-tx", type=int, default=PER_TRANSACTION,
                        help="sales per journal transaction (one fsync each)")
    parser.add_argument("--priced", action="store_true",
                        help="price every sale through the sale service (slower)")
    parser.add_argument("--varied", action="store_true",
                        help="random priced baskets of the demo catalog (slowest)")
    args = parser.parse_args()
    start = time.perf_counter()
    head = asyncio.run(build_journal(args.state, args.sales, per_tx=args.per_tx,
                                     priced=args.priced, varied=args.varied,
                                     progress=True))
    seconds = time.perf_counter() - start
    print(f"journal in {args.state}: head seq {head}, {args.sales} sales in "
          f"{seconds:.0f} s ({args.sales / seconds:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
