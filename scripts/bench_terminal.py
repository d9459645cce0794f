"""Card terminal protocol overhead, next to the simulated terminal's own delay.

The daemon runs as a real `stallbox serve` process; the simulated ZVT terminal
runs on a pty in this process, so its timestamps and the client's share one
clock. Measured per card sale:

- API call -> authorisation frame (06 01) decoded by the terminal;
- terminal's final message (06 0F completion) -> the sale's status change as a
  client sees it (server-sent event after the journal commit);
- the whole sale, API call -> approved, next to the time the terminal itself
  spent (its scripted prompt delays and its own frame round trips).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from device.sim.zvt_terminal import ZvtSimBehaviour, ZvtTerminalSim
from device.terminal import zvt_apdu as z
from scripts.daemonproc import DaemonProcess, run_cli, write_config

CATALOG = b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
STEP_DELAY_S = 0.05  # the terminal's pause after each prompt
COMPLETION = b"\x06\x0f"  # ZVT 06 0F completion: control back to the ECR


class TimedSim(ZvtTerminalSim):
    """A simulated terminal that notes when the amount came and when it ended."""

    def __init__(self, link_path: Path) -> None:
        super().__init__(link_path, ZvtSimBehaviour(step_delay_s=STEP_DELAY_S))
        self.auth_at: list[float] = []
        self.final_at: list[float] = []
        self._paying = False

    def _dispatch(self, apdu: bytes) -> None:
        if apdu[:2] == z.CMD_AUTHORISATION:
            self.auth_at.append(time.perf_counter())
            self._paying = True
        super()._dispatch(apdu)

    def _send_and_wait_ecr_ack(self, apdu: bytes) -> bytes | None:
        if self._paying and apdu[:2] == COMPLETION:
            self.final_at.append(time.perf_counter())
            self._paying = False
        return super()._send_and_wait_ecr_ack(apdu)


async def _one_sale(session: aiohttp.ClientSession,
                    url: str) -> tuple[float, float, float]:
    """Sell by card; return when the call was made, answered, seen approved."""
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": "TEE", "qty": 1}],
            "payment": {"method": "card"}}
    start = time.perf_counter()
    async with session.post(url + "api/v1/sales", json=body) as resp:
        sale = await resp.json()
        if resp.status != 202:
            raise RuntimeError(f"card sale refused: {resp.status} {sale}")
    answered = time.perf_counter()
    events = url + f"api/v1/payments/{sale['payment']['id']}/events"
    async with session.get(events) as stream:
        async for line in stream.content:
            if line.startswith(b"data: "):
                payment = json.loads(line[6:])
                if payment["outcome"] != "pending":
                    if payment["outcome"] != "approved":
                        raise RuntimeError(f"payment {payment['outcome']}")
                    return start, answered, time.perf_counter()
    raise RuntimeError("event stream ended before the payment did")


async def _drive(url: str, token: str,
                 sales: int) -> list[tuple[float, float, float]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        await _one_sale(session, url)  # warm-up: registration, first fsyncs
        return [await _one_sale(session, url) for _ in range(sales)]


async def _pair(url: str, code: str) -> str:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url + "api/v1/pair",
                                  json={"code": code, "name": "bench-card"})
        return str((await resp.json())["token"])


def measure(root: Path, sales: int) -> dict[str, list[float]]:
    """Run card sales against a daemon and return per-sale timings in ms."""
    root.mkdir(parents=True, exist_ok=True)
    sim = TimedSim(root / "ttyZVT")
    sim.start()
    state = root / "state"
    extra = f'[terminal]\nprotocol = "zvt"\nport = "{sim.link_path}"\n'
    daemon = DaemonProcess(write_config(root / "stallbox.toml", state, extra))
    try:
        code = run_cli("pair", "--state", str(state)).stdout.split()[-1]
        token = asyncio.run(_pair(daemon.url, code))
        (root / "catalog.csv").write_bytes(CATALOG)
        run_cli("import-catalog", str(root / "catalog.csv"), "--state", str(state))
        calls = asyncio.run(_drive(daemon.url, token, sales))
    finally:
        daemon.terminate()
        sim.stop()
    auth, final = sim.auth_at[1:], sim.final_at[1:]
    return {
        "api_to_frame": [(a - s) * 1000 for (s, _, _), a in
                         zip(calls, auth, strict=True)],
        "api_to_202": [(r - s) * 1000 for s, r, _ in calls],
        "final_to_status": [(d - f) * 1000 for (_, _, d), f in
                            zip(calls, final, strict=True)],
        "whole": [(d - s) * 1000 for s, _, d in calls],
        "terminal_own": [(f - a) * 1000 for a, f in zip(auth, final, strict=True)],
    }


def median(values: list[float]) -> float:
    """Return the median of the values."""
    return statistics.median(values)


def figures(quick: bool, root: Path, commit_floor_ms: float) -> list[Any]:
    """Return the benchmark's figures, each next to its floor."""
    from scripts.bench import Figure

    t = measure(root / "terminal", 15 if quick else 60)
    return [
        Figure("card: API call -> 06 01 decoded by terminal, p50",
               median(t["api_to_frame"]), "ms", "sqlite commit (intent first)",
               commit_floor_ms, "≤ floor + 10 ms"),
        Figure("card: API call -> 202 with the pending sale, p50",
               median(t["api_to_202"]), "ms", "sqlite commit", commit_floor_ms),
        Figure("card: terminal 06 0F -> status change seen, p50",
               median(t["final_to_status"]), "ms", "sqlite commit (outcome)",
               commit_floor_ms, "≤ floor + 10 ms"),
        Figure("card sale, API call -> approved seen, p50", median(t["whole"]),
               "ms", "simulated terminal's own time", median(t["terminal_own"]),
               "≤ +10 ms added"),
    ]
