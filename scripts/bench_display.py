"""Customer display benchmark (#8): render p99 on cache hit and miss.

Run through ``scripts/bench.py display``. A daemon process serves the
display; another process holds DISPLAYS server-sent-event connections open
and times sequential GETs of /display: the same cohort again and again (a
cache hit but for the first request of each bucket), a new stall zone on
every request (a miss: selection plus render), and an empty aiohttp handler
in a third process, all in the same run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent

DISPLAYS = 50
TILL = "bench"


async def _timed_gets(session: aiohttp.ClientSession, urls: list[str]
                      ) -> list[float]:
    times = []
    for url in urls:
        start = time.perf_counter()
        async with session.get(url) as resp:
            body = await resp.read()
            if resp.status != 200 or not body:
                raise RuntimeError(f"display GET failed: {resp.status}")
        times.append((time.perf_counter() - start) * 1000)
    return times


async def _hold_streams(session: aiohttp.ClientSession, base: str,
                        ready: asyncio.Event, count: int) -> list[Any]:
    streams = []
    for index in range(count):
        resp = await session.get(f"{base}display/events?till={TILL}&zone=s{index}")
        await resp.content.readline()  # "retry: ..." arrives first
        streams.append(resp)
    ready.set()
    return streams


async def _measure(base: str, empty: str, token: str, requests: int
                   ) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=DISPLAYS + 4)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=timeout) as session:
        streams = await _hold_streams(session, base, asyncio.Event(), DISPLAYS)
        page = f"{base}display?till={TILL}&size=m&lang=de"
        await _timed_gets(session, [page] * 50 + [empty] * 50)  # warm-up
        result = {
            "empty": await _timed_gets(session, [empty] * requests),
            "hit": await _timed_gets(session, [page] * requests),
            "miss": await _timed_gets(session, [f"{page}&zone=m{i}"
                                                for i in range(requests)]),
        }
        for stream in streams:
            stream.close()
    return result


def _measure_process(base: str, empty: str, token: str, requests: int,
                     out: Any) -> None:
    out.put(asyncio.run(_measure(base, empty, token, requests)))


def _spawn(target: Any, *args: Any) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue), daemon=True)
    proc.start()
    return proc, queue


def _result(proc: Any, out: Any) -> dict[str, list[float]]:
    """Wait for the load process's result; fail fast if it died."""
    import queue

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            result: dict[str, list[float]] = out.get(timeout=1)
        except queue.Empty:
            if proc.exitcode is not None:
                raise RuntimeError("display load process failed") from None
            continue
        proc.join()
        return result
    raise RuntimeError("display load process timed out")


BENCH_PIN = "246810"


def _set_manager_pin(state: Path) -> None:
    """Set the manager PIN through the CLI, as an installer would."""
    subprocess.run([sys.executable, "-m", "daemon.cli", "manager-pin", "--state",
                    str(state), "--pin-stdin"], input=BENCH_PIN + "\n", text=True,
                   check=True, capture_output=True, timeout=60, cwd=REPO)


async def _add_creatives(base: str, token: str) -> None:
    """Give the display a product promo and a sponsor with a QR code."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(base + "api/v1/elevate",
                                json={"pin": BENCH_PIN}) as resp:
            if resp.status != 200:  # managing creatives is a manager action
                raise RuntimeError(f"elevation refused: {await resp.text()}")
    forms = ({"kind": "product", "title": "Tee", "sku": "TEE"},
             {"kind": "sponsor", "title": "Markt", "sponsor": "Markt e.V.",
              "share": "30", "url": "https://example.org/markt"})
    async with aiohttp.ClientSession(headers=headers) as session:
        for form in forms:
            async with session.post(base + "display/manage/creatives", data=form,
                                    allow_redirects=False) as resp:
                if resp.status != 303:
                    raise RuntimeError(f"creative refused: {await resp.text()}")


def run(quick: bool, root: Path) -> list[Any]:
    """Measure display renders next to an empty handler; return the figures."""
    from scripts.bench import Figure, Stall, percentile

    requests = 500 if quick else 3000
    from scripts.bench import serve_empty

    empty_proc, ports = _spawn(serve_empty, "GET", "/display")
    empty = f"http://127.0.0.1:{ports.get(timeout=30)}/display"
    stall = Stall(root / "display")
    try:
        _set_manager_pin(stall.state)
        asyncio.run(_add_creatives(stall.daemon.url, stall.token))
        proc, out = _spawn(_measure_process, stall.daemon.url, empty, stall.token,
                           requests)
        result = _result(proc, out)
    finally:
        stall.stop()
        empty_proc.terminate()
    empty_p99 = percentile(result["empty"], 99)
    label = f"empty handler p99, {DISPLAYS} SSE displays open"
    return [
        Figure(f"empty aiohttp GET, p99 ({DISPLAYS} SSE open)", empty_p99, "ms"),
        Figure("display render, cache hit, p99", percentile(result["hit"], 99),
               "ms", label, empty_p99, "≤ 1.5×"),
        Figure("display render, cache hit, p50",
               percentile(result["hit"], 50), "ms", "empty handler p50",
               percentile(result["empty"], 50)),
        Figure("display render, cache miss, p99", percentile(result["miss"], 99),
               "ms", label, empty_p99),
    ]
