"""Operations: /healthz, /metrics, the clock page, the disk reserve, the setup QR."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.ops import clock as clock_module
from daemon.ops import disk as disk_module
from daemon.ops.clock import CLOCK
from daemon.ops.logfmt import LogfmtFormatter
from daemon.web.app import create_app
from tests.conftest import auth, make_config, pair
from tests.test_api import sale_body, stock


@pytest.fixture(autouse=True)
def fresh_clock() -> Iterator[None]:
    CLOCK.offset_s, CLOCK.checked_monotonic = 0.0, 0.0
    yield
    CLOCK.offset_s, CLOCK.checked_monotonic = 0.0, 0.0


async def test_healthz_reports_every_part(client: Any) -> None:
    resp = await client.get("/healthz")
    doc = await resp.json()
    assert resp.status == 200, doc
    for part in ("journal", "printer", "sync", "clock", "disk"):
        assert part in doc, part
    assert doc["journal"]["state"] in ("ok", "checking")
    assert doc["disk"]["state"] == "ok"
    assert doc["clock"]["state"] in ("synced", "unsynced", "unknown")
    assert "terminal" not in doc  # none configured


async def test_metrics_are_prometheus_text(client: Any) -> None:
    token = await pair(client)
    await stock(client, token)
    resp = await client.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 1)], 1000))
    assert resp.status == 201
    text = await (await client.get("/metrics", headers=auth(token))).text()
    assert "stallbox_sales_total 1" in text
    assert "stallbox_print_queue_jobs 1" in text  # no printer configured
    assert "stallbox_journal_wal_bytes " in text
    bucket = ('stallbox_http_request_duration_seconds_bucket{method="POST",'
              'route="/api/v1/sales",le="+Inf"} 1')
    assert bucket in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2, line


async def test_unsynced_clock_flags_the_sale_and_a_manager_corrects_it(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "read_synced", lambda: (False, "test"))
    token = await pair(client)
    await stock(client, token)
    resp = await client.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 1)], 1000))
    assert resp.status == 201
    target_ms = 1_900_000_000_000  # 2030-03-17, far from the real clock
    resp = await client.post("/clock", data={"epoch_ms": str(target_ms)},
                             headers=auth(token), allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "clock"
    resp = await client.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 1)], 1000))
    kinds = _events(client)
    sales = [e for e in kinds if e["kind"] == "sale.completed"]
    assert sales[0]["data"]["clock_synced"] is False
    assert "clock_synced" not in sales[1]["data"]
    assert sales[1]["ts"].startswith("2030-03-17")
    assert [e["kind"] for e in kinds].index("clock.corrected") < kinds.index(sales[1])
    doc = await (await client.get("/healthz")).json()
    assert doc["clock"]["state"] == "corrected"
    page = await (await client.get("/clock", headers=auth(token))).text()
    assert "set by hand" in page


def _events(client: Any) -> list[dict[str, Any]]:
    box = client.app["stallbox"] if False else next(
        v for v in client.app.values() if hasattr(v, "journal"))
    conn = sqlite3.connect(box.journal.path)
    rows = conn.execute("SELECT body FROM events ORDER BY seq").fetchall()
    conn.close()
    return [json.loads(body) for (body,) in rows]


async def test_printer_page_shows_ip_url_and_qr(client: Any) -> None:
    token = await pair(client)
    page = await (await client.get("/printer", headers=auth(token))).text()
    assert "http://127.0.0.1:" in page
    assert "<svg" in page and ".local" not in page


def test_log_lines_are_one_logfmt_line() -> None:
    record = logging.LogRecord("daemon.x", logging.WARNING, __file__, 1,
                               "printer gone\nagain %s", ("now",), None)
    line = LogfmtFormatter(with_time=False).format(record)
    assert line == 'level=warning logger=daemon.x msg="printer gone\\nagain now"'


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs of our own, unmounted afterwards (needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs",
                           str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + done.stderr.decode()[:200])
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_sales_refused_below_the_disk_reserve_and_journal_intact(
        aiohttp_client: Any, small_disk: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_module, "CHECK_INTERVAL_S", 0.0)
    state = small_disk / "state"
    state.mkdir()
    client = await aiohttp_client(create_app(
        make_config(state, state={"reserve_mb": 2})))
    token = await pair(client)
    await stock(client, token)
    assert (await client.post("/api/v1/sales", headers=auth(token),
                              json=sale_body([("BROT", 1)], 1000))).status == 201
    filler = small_disk / "filler"
    _fill(filler, small_disk, leave_bytes=1024 * 1024)
    resp = await client.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 1)], 1000))
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    assert "storage is nearly full" in (await resp.json())["detail"]
    assert (await (await client.get("/healthz")).json())["disk"]["state"] == "low"
    till = await client.post("/api/v1/sales", json=sale_body([("BROT", 1)], 1000),
                             headers=auth(token))
    assert till.status == 503
    filler.unlink()
    assert (await client.post("/api/v1/sales", headers=auth(token),
                              json=sale_body([("BROT", 1)], 1000))).status == 201
    await client.close()
    conn = sqlite3.connect(state / "journal.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 2
    conn.close()


async def test_a_truly_full_disk_fails_the_sale_not_the_journal(
        aiohttp_client: Any, small_disk: Path) -> None:
    state = small_disk / "state"
    state.mkdir()
    client = await aiohttp_client(create_app(
        make_config(state, state={"reserve_mb": 0})))
    token = await pair(client)
    await stock(client, token)
    _fill(small_disk / "filler", small_disk, leave_bytes=0)
    statuses = []
    for _ in range(400):  # old WAL blocks may take a few sales, then it is full
        resp = await client.post("/api/v1/sales", headers=auth(token),
                                 json=sale_body([("BROT", 1)] * 20, 10000))
        statuses.append(resp.status)
        if resp.status == 503:
            break
    assert statuses[-1] == 503
    (small_disk / "filler").unlink()
    assert (await client.post("/api/v1/sales", headers=auth(token),
                              json=sale_body([("BROT", 1)], 1000))).status == 201
    await client.close()
    conn = sqlite3.connect(state / "journal.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _fill(path: Path, mount: Path, leave_bytes: int) -> None:
    st = os.statvfs(mount)
    size = max(0, st.f_bavail * st.f_frsize - leave_bytes)
    with path.open("wb") as out:
        try:
            out.write(b"\0" * size)
        except OSError:
            pass  # full: exactly what the test wants


async def test_stop_interrupts_the_integrity_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM soon after start must not wait for quick_check, which takes
    minutes on a 1 M-sale journal: here it is slowed down to as long."""
    import asyncio
    import time

    from daemon import runtime

    real_open = runtime.open_readonly

    def slow_open(path: Path) -> sqlite3.Connection:
        conn = real_open(path)
        conn.set_progress_handler(lambda: time.sleep(0.05) or 0, 10)
        return conn

    monkeypatch.setattr(runtime, "open_readonly", slow_open)
    box = runtime.Stallbox(make_config(tmp_path))
    await box.open()
    for _ in range(50):
        if box._check_conn is not None:
            break
        await asyncio.sleep(0.02)
    assert box._check_conn is not None  # the check is running
    await asyncio.wait_for(box.stop(), 10.0)  # the check alone would take minutes
    assert box.health.integrity == "checking"  # interrupted, not finished
