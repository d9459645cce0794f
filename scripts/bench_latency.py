"""Cash sale latency versus concurrent tablets (#9), plotted as an SVG.

Run through ``scripts/bench.py latency``. One daemon process; for each number
of tablets a load-generator process sends durable cash sales through the API,
and the same load goes to an empty aiohttp handler as the floor. The p50, p90
and p99 of each step are drawn to docs/bench-latency.svg.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
from pathlib import Path
from typing import Any

from scripts.svgplot import Series, line_chart

TABLETS = (1, 5, 10, 20, 40)
STEPS_TIMEOUT_S = 600.0
PLOT = Path(__file__).resolve().parent.parent / "docs" / "bench-latency.svg"
PERCENTILES = (("p50", 50, "#1b6ca8", ""), ("p90", 90, "#e08a00", ""),
               ("p99", 99, "#c0392b", ""))


def sales_per_tablet(tablets: int, quick: bool) -> int:
    """Return how many sales each tablet sends: ~200 (quick) or 2000 per step."""
    return max(5, (200 if quick else 2000) // tablets)


async def _all_steps(url: str, token: str, quick: bool) -> dict[int, list[float]]:
    from scripts.bench import _drive

    return {n: (await _drive(url, token, n, sales_per_tablet(n, quick)))["latencies"]
            for n in TABLETS}


def _steps_process(url: str, token: str, quick: bool, out: Any) -> None:
    out.put(asyncio.run(_all_steps(url, token, quick)))


def _steps(url: str, token: str, quick: bool) -> dict[int, list[float]]:
    """Return the latencies (ms) at every number of tablets, from one load process."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_steps_process, args=(url, token, quick, out))
    proc.start()
    try:
        return dict(out.get(timeout=STEPS_TIMEOUT_S))
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def write_plot(sales: dict[int, list[float]], empty: dict[int, list[float]],
               subtitle: str, path: Path = PLOT) -> Path:
    """Draw the sale percentiles and the empty handler's p99 to path."""
    from scripts.bench import percentile

    series = [Series(f"sale {name}", colour,
                     tuple(percentile(sales[n], pct) for n in TABLETS), dash)
              for name, pct, colour, dash in PERCENTILES]
    series.append(Series("empty handler p99", "#777",
                         tuple(percentile(empty[n], 99) for n in TABLETS), "5 4"))
    svg = line_chart("Durable cash sale latency vs concurrent tablets", subtitle,
                     "concurrent tablets", "latency (ms)",
                     [str(n) for n in TABLETS], series)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path


def run(quick: bool, root: Path, figure: Any) -> list[Any]:
    """Measure every step, write the plot, and return p99 per step as figures."""
    from scripts.bench import Stall, empty_handler_url, machine_summary, now_utc

    empty_url, empty_proc = empty_handler_url()
    try:
        empty = _steps(empty_url, "x", quick)
    finally:
        empty_proc.terminate()
    stall = Stall(root / "latency")
    try:
        sales = _steps(stall.sales_url, stall.token, quick)
    finally:
        stall.stop()
    write_plot(sales, empty, f"{now_utc()} · {machine_summary()}")
    return [figure(f"cash sale p99, {n} tablets ({len(sales[n])} sales; "
                   f"p50 {statistics.median(sales[n]):.2f} ms)",
                   percentile_of(sales[n], 99), "ms", f"empty handler p99, {n} tablets",
                   percentile_of(empty[n], 99)) for n in TABLETS]


def percentile_of(values: list[float], pct: float) -> float:
    """Return bench.percentile of values (imported late: bench imports this)."""
    from scripts.bench import percentile

    return percentile(values, pct)
