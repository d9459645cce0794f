"""Verify replays every read model made from events: a journal with printing,
reprints, refunds, pairings, a revocation and a shift close verifies, and an
edit of any row of each covered table is named by its seq."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from device.sim.printer import SimulatedPrinter
from tests.conftest import DEMO_CSV, auth, make_config, pair

SKU = DEMO_CSV.read_text(encoding="utf-8").splitlines()[1].split(",")[0]
WAIT_S = 20.0


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "by-id-printer") as sim:
        yield sim


async def _post(client: Any, token: str, path: str, body: dict[str, Any]) -> Any:
    resp = await client.post(path, json=body, headers=auth(token))
    assert resp.status in (200, 201, 202), await resp.text()
    return await resp.json()


async def _sell(client: Any, token: str, qty: int) -> dict[str, Any]:
    return await _post(client, token, "/api/v1/sales", {
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": SKU, "qty": qty}],
        "payment": {"method": "cash", "tendered_minor": 1_000_000}})


async def _printed(printer: SimulatedPrinter, jobs: int) -> None:
    """Wait until the printer has printed `jobs` receipts or slips.

    print.done may be journaled with a later commit (#7); the events that
    follow in the fixture make those commits.
    """
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        if len(printer.receipts) >= jobs:
            return
        assert asyncio.get_running_loop().time() < deadline, "printing timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def rich_state(aiohttp_client: Any, state_dir: Path,
                     printer: SimulatedPrinter) -> Path:
    """A stopped daemon's state: every kind of row the replay covers."""
    config = make_config(state_dir, printer={"port": printer.port_path,
                                             "baudrate": 115200})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    other = await pair(client, "Till 2")
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    sales = [await _sell(client, token, qty) for qty in (1, 2, 3)]
    await _printed(printer, 3)
    await _post(client, token, f"/api/v1/sales/{sales[0]['id']}/reprint", {})
    refund = await _post(client, token, f"/api/v1/sales/{sales[1]['id']}/refunds",
                         {"client_ref": uuid.uuid4().hex})
    await _printed(printer, 5)
    await _post(client, token, f"/api/v1/refunds/{refund['id']}/reprint", {})
    tablets = await (await client.get("/api/v1/tablets", headers=auth(token))).json()
    items = tablets["items"] if isinstance(tablets, dict) else tablets
    till_2 = next(t for t in items if t["name"] == "Till 2")
    await _post(client, token, f"/api/v1/tablets/{till_2['seq']}/revoke", {})
    assert (await client.get("/api/v1/sales", headers=auth(other))).status == 401
    await _post(client, token, "/api/v1/shifts/close",
                {"client_ref": uuid.uuid4().hex, "counted_cash_minor": 0})
    await client.close()
    return state_dir


def _verify(path: Path, state: Path, processes: int = 1) -> Any:
    device = DeviceIdentity.load_or_create(state).public_bytes
    return verify_journal(path, device, observers=replay_observers(),
                          processes=processes)


def _copy(src: Path, dst: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")
    return dst


async def test_a_journal_with_every_covered_table_verifies(rich_state: Path) -> None:
    path = rich_state / JOURNAL_FILE
    conn = sqlite3.connect(path)
    for table in ("products", "product_billing", "tablets", "pairing_codes",
                  "shifts", "refunds", "refund_lines", "print_jobs",
                  "print_job_refunds"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0], table
    statuses = {r[0] for r in conn.execute("SELECT status FROM print_jobs")}
    conn.close()
    assert "printed" in statuses
    for processes in (1, 2):
        result = _verify(path, rich_state, processes)
        assert result.ok, result.reason


# (table, edit, the seq the fault must name: SQL over the original journal)
EDITS = [
    ("products", "UPDATE products SET price_minor = price_minor + 1 WHERE rowid = 1",
     "SELECT seq FROM products WHERE rowid = 1"),
    ("products", "DELETE FROM products WHERE rowid = 2",
     "SELECT seq FROM products WHERE rowid = 2"),
    ("product_billing", "UPDATE product_billing SET packaging = 'x' WHERE rowid = 1",
     "SELECT seq FROM product_billing WHERE rowid = 1"),
    ("tablets", "UPDATE tablets SET name = 'Till 9' WHERE rowid = 1",
     "SELECT seq FROM tablets WHERE rowid = 1"),
    ("tablets", "UPDATE tablets SET revoked = 1 WHERE rowid = 1",
     "SELECT seq FROM tablets WHERE rowid = 1"),
    ("pairing_codes", "UPDATE pairing_codes SET expires_at = '2099-01-01T00:00:00Z'"
     " WHERE rowid = 1", "SELECT seq FROM pairing_codes WHERE rowid = 1"),
    ("shifts", "UPDATE shifts SET report = replace(report, '\"sales_count\":',"
     " '\"sales_count\":1')", "SELECT seq FROM shifts"),
    ("refunds", "UPDATE refunds SET total_minor = total_minor + 1",
     "SELECT seq FROM refunds"),
    ("refund_lines", "UPDATE refund_lines SET qty = qty + 1",
     "SELECT seq FROM refunds"),
    ("print_jobs", "UPDATE print_jobs SET status = 'queued' WHERE id = 1",
     "SELECT updated_seq FROM print_jobs WHERE id = 1"),
    ("print_jobs", "UPDATE print_jobs SET reprint = 0 WHERE id = 4",
     "SELECT seq FROM print_jobs WHERE id = 4"),
    ("print_jobs", "UPDATE print_jobs SET sale_id = (SELECT id FROM sales LIMIT 1"
     " OFFSET 2) WHERE id = 1", "SELECT seq FROM print_jobs WHERE id = 1"),
    ("print_job_refunds", "DELETE FROM print_job_refunds WHERE job_id ="
     " (SELECT MIN(job_id) FROM print_job_refunds)",
     "SELECT updated_seq FROM print_jobs WHERE id = (SELECT MIN(job_id)"
     " FROM print_job_refunds)"),
]


@pytest.mark.parametrize(("table", "sql", "seq_sql"), EDITS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(EDITS)])
@pytest.mark.parametrize("processes", [1, 2])
async def test_an_edited_row_of_each_covered_table_is_named(
        rich_state: Path, tmp_path: Path, table: str, sql: str,
        seq_sql: str, processes: int) -> None:
    src = rich_state / JOURNAL_FILE
    conn = sqlite3.connect(src)
    seq = conn.execute(seq_sql).fetchone()[0]
    conn.close()
    dst = _copy(src, tmp_path / "edited.sqlite3")
    conn = sqlite3.connect(dst)
    conn.execute("PRAGMA foreign_keys = OFF")
    assert conn.execute(sql).rowcount == 1 or table in ("refunds", "refund_lines")
    conn.commit()
    conn.close()
    result = _verify(dst, rich_state, processes)
    assert result.bad_seq == seq and table.split("_")[0] in result.reason, result


async def test_display_stats_sync_cursor_and_live_integrations_are_replayed(
        aiohttp_client: Any, state_dir: Path, tmp_path: Path) -> None:
    from daemon.display.store import record_measurements
    from daemon.live.service import _journal_integration
    from sync import cursor

    client = await aiohttp_client(create_app(make_config(state_dir)))
    box = client.app[STALLBOX]
    rows = [{"slot": "a", "hour": "2026-12-04T10", "cohort": "x", "impressions": 3,
             "shown_s": 9, "conversions": 1}]

    def write(tx: Any) -> None:
        record_measurements(tx, rows)
        record_measurements(tx, rows)
        cursor.ensure_table(tx)
        cursor.persist(tx, 1)
        cursor.persist(tx, 3)
        _journal_integration(tx, "shop")

    await box.journal.transact(write)
    await client.close()
    src = state_dir / JOURNAL_FILE
    assert _verify(src, state_dir).ok
    edits = [("display_stats", "UPDATE display_stats SET impressions = 5"),
             ("sync_cursor", "UPDATE sync_cursor SET acked_seq = 2"),
             ("live_integrations", "UPDATE live_integrations SET name = 'other'")]
    for table, sql in edits:
        dst = _copy(src, tmp_path / f"{table}.sqlite3")
        conn = sqlite3.connect(dst)
        conn.execute(sql)
        conn.commit()
        conn.close()
        result = _verify(dst, state_dir)
        assert not result.ok and table.split("_")[0] in result.reason, result


async def test_a_journal_older_than_a_read_model_table_still_verifies(
        rich_state: Path, tmp_path: Path) -> None:
    dst = _copy(rich_state / JOURNAL_FILE, tmp_path / "old.sqlite3")
    conn = sqlite3.connect(dst)
    for table in ("email_receipts", "shredded_days", "display_stats"):
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    result = _verify(dst, rich_state)
    assert result.ok, result.reason
