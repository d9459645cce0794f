#!/usr/bin/env python3
"""Torture run: sell hard while breaking things, then check every invariant.

    python scripts/torture.py --minutes 2 --seed 7

The daemon runs as a real process (`stallbox serve`) with a simulated receipt
printer on a pseudo-terminal owned by this script, so killing the daemon does
not kill the printer. Tablets (asyncio clients in this process) sell for cash
and retry a lost answer with the same client_ref, as the till does. At random
moments the run SIGKILLs the daemon, switches the printer offline or out of
paper, stalls it, or pulls its cable. At the end it lets the printer recover,
waits for the print queue to drain and checks, printing the table last:

- every sale acknowledged to a tablet is in the journal exactly once;
- the journal holds no sale nobody asked for;
- every receipt printed at most once unless reprinted; every sale printed, or
  listed for a person to reprint when its automatic reprint was cut off too;
  no job marked printed that never reached the paper (the worker asks status
  after each job: a printer answers only after the bytes before the question);
- `stallbox verify` passes; `PRAGMA integrity_check` is ok.

Exit 0 only when every invariant holds. All traffic stays on loopback, and the
run is bounded in time and in requests.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from device.sim.printer import SimulatedPrinter  # noqa: E402
from scripts.daemonproc import DaemonProcess, run_cli, write_config  # noqa: E402

TABLETS = 6
MAX_REQUESTS = 200_000
RETRIES_PER_SALE = 20
CLIENT_TIMEOUT_S = 5.0
# The print queue drains as long as it keeps shrinking: a run of several
# minutes leaves tens of thousands of receipts, more than a fixed wait prints.
DRAIN_STALL_S = 60.0  # no job finished for this long: the queue is stuck
CATALOG = ("sku,name,price,tax_class\nTEE,Kräutertee,\"3,20\",reduced\n"
           "SEIFE,Ziegenmilchseife,\"5,90\",standard\n"
           "CREME,Crème brûlée,\"4,50\",reduced\n").encode()
SALE_ID = re.compile(r"Sale ([0-9a-f]{16})")


@dataclass
class Ledger:
    """What the tablets were told, kept by this process."""

    sent: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    gave_up: int = 0
    chaos: Counter[str] = field(default_factory=Counter)


class Stall:
    """The daemon under torture and the printer it prints on."""

    def __init__(self, root: Path) -> None:
        self.state = root / "state"
        self.printer = SimulatedPrinter(baudrate=115200, link_path=root / "printer")
        self.printer.start()
        extra = (f'[printer]\nport = "{self.printer.port_path}"\n'
                 "baudrate = 115200\n")
        self.config = write_config(root / "stallbox.toml", self.state, extra)
        self.daemon = DaemonProcess(self.config)
        self.url = self.daemon.url
        self.token = ""

    def restart(self) -> None:
        self.daemon = DaemonProcess(self.config)
        self.url = self.daemon.url

    async def setup(self) -> None:
        # The catalog goes in through the local CLI (the daemon's control socket),
        # as an owner's script would; over HTTP it needs the manager PIN.
        catalog = self.state.parent / "catalog.csv"
        catalog.write_bytes(CATALOG)
        imported = run_cli("import-catalog", str(catalog), "--state", str(self.state))
        if imported.returncode != 0:
            raise RuntimeError(f"catalog import failed: {imported.stderr}")
        code = run_cli("pair", "--state", str(self.state)).stdout.split()[-1]
        async with aiohttp.ClientSession() as session:
            resp = await session.post(self.url + "api/v1/pair",
                                      json={"code": code, "name": "torture"})
            self.token = (await resp.json())["token"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sell_once(session: aiohttp.ClientSession, stall: Stall, ledger: Ledger,
                    rng: random.Random) -> None:
    """Sell one cart, retrying a lost answer with the same client_ref."""
    ref = uuid.UUID(int=rng.getrandbits(128)).hex
    ledger.sent.add(ref)
    body = {"client_ref": ref,
            "lines": [{"sku": rng.choice(["TEE", "SEIFE", "CREME"]),
                       "qty": rng.randint(1, 3)}],
            "payment": {"method": "cash", "tendered_minor": 5000}}
    for _ in range(RETRIES_PER_SALE):
        ledger.requests += 1
        try:
            async with session.post(stall.url + "api/v1/sales", json=body,
                                    headers=stall.auth) as resp:
                data = await resp.json()
                if resp.status in (200, 201):
                    ledger.acked[ref] = data["id"]
                    return
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
        await asyncio.sleep(0.2)
    ledger.gave_up += 1


async def tablet(stall: Stall, ledger: Ledger, rng: random.Random,
                 until: float) -> None:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < until and ledger.requests < MAX_REQUESTS:
            await sell_once(session, stall, ledger, rng)
            await asyncio.sleep(rng.uniform(0, 0.05))


async def chaos(stall: Stall, ledger: Ledger, rng: random.Random,
                until: float) -> None:
    """Break one thing at a time, at random moments, until the run ends."""
    printer = stall.printer
    faults: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "printer offline": (lambda: printer.set_online(False),
                            lambda: printer.set_online(True)),
        "paper out": (lambda: printer.set_paper_out(True),
                      lambda: printer.set_paper_out(False)),
        "printer stalled": (lambda: printer.set_stalled(True),
                            lambda: printer.set_stalled(False)),
        "printer unplugged": (printer.unplug, printer.replug),
    }
    while time.monotonic() < until:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        if rng.random() < 0.4:
            ledger.chaos["daemon SIGKILL"] += 1
            stall.daemon.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await asyncio.to_thread(stall.restart)
            continue
        name = rng.choice(sorted(faults))
        ledger.chaos[name] += 1
        start, stop = faults[name]
        start()
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        stop()


async def drive(stall: Stall, ledger: Ledger, seed: int, minutes: float) -> None:
    rng = random.Random(seed)
    until = time.monotonic() + minutes * 60
    await stall.setup()
    tasks = [tablet(stall, ledger, random.Random(rng.random()), until)
             for _ in range(TABLETS)]
    await asyncio.gather(chaos(stall, ledger, random.Random(rng.random()), until),
                         *tasks)


def wait_for_prints(stall: Stall) -> bool:
    """Wait until no print job is queued or printing; False when the queue
    stops shrinking for DRAIN_STALL_S."""
    db = stall.state / "journal.sqlite3"
    least, progress_at = None, time.monotonic()
    while time.monotonic() - progress_at < DRAIN_STALL_S:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            open_jobs = conn.execute("SELECT count(*) FROM print_jobs WHERE status"
                                     " IN ('queued', 'printing')").fetchone()[0]
        finally:
            conn.close()
        if open_jobs == 0:
            time.sleep(0.5)  # let the simulator finish decoding the last cut
            return True
        if least is None or open_jobs < least:
            least, progress_at = open_jobs, time.monotonic()
        time.sleep(0.5)
    return False


Check = tuple[str, bool, str]


def check_sales(db: Path, ledger: Ledger) -> list[Check]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = dict(conn.execute("SELECT client_ref, id FROM sales"))
        events = Counter(
            ref for (ref,) in conn.execute(
                "SELECT json_extract(body, '$.data.client_ref') FROM events"
                " WHERE kind = 'sale.completed'"))
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    lost = [r for r in ledger.acked if stored.get(r) != ledger.acked[r]]
    doubled = [r for r, n in events.items() if n > 1]
    unasked = set(stored) - ledger.sent
    return [
        ("acknowledged sales in the journal exactly once", not lost and not doubled,
         f"{len(ledger.acked)} acked, {len(lost)} lost, {len(doubled)} doubled"),
        ("no sale nobody asked for", not unasked, f"{len(unasked)} unasked"),
        ("PRAGMA integrity_check", integrity == "ok", integrity),
    ]


def check_prints(stall: Stall, db: Path, drained: bool) -> list[Check]:
    originals: Counter[str] = Counter()
    printed: set[str] = set()
    for receipt in stall.printer.receipts:
        match = SALE_ID.search(receipt)
        if not match:
            continue
        printed.add(match.group(1))
        if "REPRINT" not in receipt:
            originals[match.group(1)] += 1
    last_job = _last_job_status(db)
    twice = [s for s, n in originals.items() if n > 1]
    missing = set(last_job) - printed
    listed = {s for s in missing if last_job[s] == "interrupted"}
    dropped = {s for s in missing if last_job[s] == "printed"}
    lost = missing - listed - dropped
    return [
        ("every receipt printed at most once unless reprinted", not twice,
         f"{len(twice)} printed twice"),
        ("every sale printed, or listed for a manual reprint",
         drained and not lost,
         f"{len(lost)} neither; {len(listed)} listed (cut off twice); "
         f"queue drained: {drained}"),
        ("jobs marked printed that never reached the paper", not dropped,
         f"{len(dropped)}"),
    ]


def _last_job_status(db: Path) -> dict[str, str]:
    """Return each sale's newest print job status."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT sale_id, status FROM print_jobs WHERE id IN"
            " (SELECT max(id) FROM print_jobs GROUP BY sale_id)").fetchall()
    finally:
        conn.close()
    return dict(rows)


def check_verify(stall: Stall) -> list[Check]:
    result = run_cli("verify", "--state", str(stall.state), timeout_s=300)
    return [("stallbox verify", result.returncode == 0,
             (result.stdout or result.stderr).strip().splitlines()[-1])]


def report(checks: list[Check], ledger: Ledger, minutes: float, seed: int) -> bool:
    chaos = ", ".join(f"{n}× {k}" for k, n in sorted(ledger.chaos.items()))
    print(f"torture: {minutes} min, seed {seed}, {ledger.requests} requests, "
          f"{len(ledger.acked)} sales acknowledged, {ledger.gave_up} given up")
    print(f"chaos: {chaos or 'none'}")
    print()
    print("| invariant | holds | detail |")
    print("|---|---|---|")
    for name, ok, detail in checks:
        print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
    return all(ok for _, ok, _ in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the state under this dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stallbox-torture-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        ledger = Ledger()
        stall = Stall(root)
        try:
            asyncio.run(drive(stall, ledger, args.seed, args.minutes))
            drained = wait_for_prints(stall)
        finally:
            stall.daemon.terminate()
        db = stall.state / "journal.sqlite3"
        checks = (check_sales(db, ledger) + check_prints(stall, db, drained)
                  + check_verify(stall))
        stall.printer.stop()
        return 0 if report(checks, ledger, args.minutes, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
