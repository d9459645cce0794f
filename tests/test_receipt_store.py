"""Receipt rows hold only what the sale event lacks; rows of the whole form the
sale service wrote before still read the same and verify, and an edit of
either form is named by its seq."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.billing.carbon import estimate_from_record, receipt_lines
from daemon.config import Config
from daemon.errors import NotFoundError
from daemon.journal.verify import VerifyResult, verify_journal
from daemon.runtime import JOURNAL_FILE
from daemon.sales import receipt_store
from daemon.trust.excerpt import excerpt_for_sale, sale_signed_text
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from device.sim.zvt_terminal import ZvtTerminalSim
from tests.cardhelpers import (
    sell_by_card,
    settled,
    stock,
    zvt_fixtures,
)
from tests.conftest import auth, make_config, pair
from tests.test_trust import _device_public, _journal_after_a_shift, _tamper

pytestmark = pytest.mark.timeout(120)
_KEEP = ("id", "currency", "lines", "taxes", "total_minor", "payments",
         "change_minor", "header", "footer", "local_time", "rounding_minor")


fast_zvt, sim = zvt_fixtures()


@pytest.fixture
def card_config(state_dir: Path, sim: ZvtTerminalSim) -> Config:
    return make_config(state_dir, terminal={
        "protocol": "zvt", "port": str(sim.link_path), "keepalive_s": 1,
        "response_timeout_s": 2})


def _verify(state: Path, journal: Path | None = None) -> VerifyResult:
    return verify_journal(journal or state / JOURNAL_FILE, _device_public(state),
                          observers=replay_observers(), processes=1)


def _rows(journal: Path) -> list[tuple[str, int, str, bytes, bytes]]:
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT s.id, s.seq, s.status, s.receipt, e.body FROM"
                            " sales s JOIN events e ON e.seq = s.seq"
                            " ORDER BY s.seq").fetchall()
    finally:
        conn.close()


async def _shown(client: TestClient, token: str, sale_id: str
                 ) -> tuple[dict[str, Any], str]:
    """Return a sale as the API shows it, and its receipt as printed."""
    sale = await client.get(f"/api/v1/sales/{sale_id}", headers=auth(token))
    text = await client.get(f"/api/v1/sales/{sale_id}/receipt", headers=auth(token))
    assert (sale.status, text.status) == (200, 200)
    shown = dict(await sale.json())
    shown.pop("print_jobs", None)  # the printer's progress, not the receipt
    return shown, await text.text()


def _whole_form(status: str, seq: int, receipt: bytes, body: bytes,
                summary: Any) -> bytes:
    """Return a row's receipt as the sale service wrote it before the slim form.

    Cash sales and pending card sales: the record with its keys in the order
    the service gave them; completed card sales: sorted keys (canonical).
    """
    data, stored = json.loads(body)["data"], json.loads(receipt)
    record = {"seq": seq, **{key: data[key] for key in _KEEP},
              "sale_discount": data.get("sale_discount")}
    if "carbon" in data:  # the text from the estimate itself, as the writer had it
        flags = data["carbon"]["flags"]
        note = [f"{len(flags)} item(s) by the stall's default factor."] if flags else []
        lines = [*receipt_lines(estimate_from_record(data["carbon"]["record"])), *note]
        record.update(carbon_lines=lines, carbon=summary,
                      methodology_url=data["carbon"]["methodology_url"])
    for key in ("terminal_lines", "excerpt"):
        if key in stored:
            record[key] = stored[key]
    card = any("intent_id" in p for p in data["payments"])
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=card and status == "completed").encode()


async def _card_stall(aiohttp_client: Any, config: Config
                      ) -> tuple[TestClient, str, dict[str, str]]:
    """Sell for cash, by card (with the terminal's slip) and a refused card."""
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await stock(client, token)
    cash = await client.post("/api/v1/sales", headers=auth(token), json={
        "client_ref": "cash-000001", "lines": [{"sku": "TEE", "qty": 2},
                                               {"sku": "SEIFE", "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 2000}})
    assert cash.status == 201, await cash.text()
    card = await sell_by_card(client, token, "card-00000001")
    assert (await settled(client, token, card["id"]))["status"] == "completed"
    refused = await sell_by_card(client, token, "card-00000002", "REFUSED")
    assert (await settled(client, token, refused["id"]))["status"] == "pending"
    ids = {"cash": (await cash.json())["id"], "card": card["id"],
           "pending": refused["id"]}
    return client, token, ids


async def test_a_sale_row_holds_only_what_its_event_lacks(
        aiohttp_client: Any, card_config: Config) -> None:
    client, token, ids = await _card_stall(aiohttp_client, card_config)
    await client.close()
    rows = {row[0]: row for row in _rows(card_config.state_dir / JOURNAL_FILE)}
    kept = {sale: list(json.loads(rows[sale_id][3]))
            for sale, sale_id in ids.items()}
    assert kept == {"cash": ["v", "excerpt"],
                    "card": ["v", "terminal_lines", "excerpt"], "pending": ["v"]}
    assert all(bytes(row[3]).startswith(b'{"v":2') for row in rows.values())
    cash = bytes(rows[ids["cash"]][3])
    assert len(cash) < 250  # the whole form: ~1.5 kB
    client = await aiohttp_client(create_app(card_config))
    token = await pair(client, "Till 2")
    for sale_id in ids.values():
        _, text = await _shown(client, token, sale_id)
        assert "Est. footprint" in text and "item(s) by the stall's default" in text
    await client.close()
    assert _verify(card_config.state_dir).ok


async def test_rows_of_the_whole_form_read_the_same_and_verify(
        aiohttp_client: Any, card_config: Config, tmp_path: Path) -> None:
    client, token, ids = await _card_stall(aiohttp_client, card_config)
    before = {sale_id: await _shown(client, token, sale_id) for sale_id in ids.values()}
    await client.close()
    journal = card_config.state_dir / JOURNAL_FILE
    conn = sqlite3.connect(journal)
    for sale_id, seq, status, receipt, body in _rows(journal):
        whole = _whole_form(status, seq, receipt, body, before[sale_id][0]["carbon"])
        conn.execute("UPDATE sales SET receipt = ? WHERE id = ?", (whole, sale_id))
    conn.commit()
    conn.close()
    assert not any(receipt_store.is_slim(bytes(r[3])) for r in _rows(journal))
    assert _verify(card_config.state_dir).ok

    client = await aiohttp_client(create_app(card_config))
    token = await pair(client, "Till 2")
    for sale_id, shown in before.items():
        assert await _shown(client, token, sale_id) == shown
    paid = await client.post(f"/api/v1/sales/{ids['pending']}/pay-cash",
                             json={"tendered_minor": 1000}, headers=auth(token))
    assert paid.status == 200, await paid.text()
    sale, text = await _shown(client, token, ids["pending"])
    assert sale["status"] == "completed" and "SB1|" in text
    await client.close()

    forms = {row[0]: receipt_store.is_slim(bytes(row[3])) for row in _rows(journal)}
    assert forms == {ids["cash"]: False, ids["card"]: False, ids["pending"]: True}
    assert _verify(card_config.state_dir).ok
    for name, old, new, named in (
            ("cash", '"qty":', '"qty":1', "differs from its sale"),
            ("cash", "Est. footprint", "Est. footprimt", "carbon part"),
            ("card", '"qty":', '"qty":1', "differs from its sale")):
        seq = next(r[1] for r in _rows(journal) if r[0] == ids[name])
        edited = _tamper(journal, tmp_path / f"{name}-{named}.sqlite3",
                         "UPDATE sales SET receipt = replace(receipt, ?, ?)"
                         " WHERE seq = ?", (old, new, seq))
        result = _verify(card_config.state_dir, edited)
        assert result.bad_seq == seq and named in result.reason, (name, result)


async def test_an_edited_card_slip_in_a_slim_row_is_named(
        aiohttp_client: Any, card_config: Config, tmp_path: Path) -> None:
    client, _, ids = await _card_stall(aiohttp_client, card_config)
    await client.close()
    journal = card_config.state_dir / JOURNAL_FILE
    seq = next(r[1] for r in _rows(journal) if r[0] == ids["card"])
    for n, (old, new) in enumerate([('"terminal_lines":[', '"terminal_lines":[1,'),
                                    ('"terminal_lines":[', '"terminal_lines":[ '),
                                    ('"terminal_lines":', '"terminal_line":')]):
        edited = _tamper(journal, tmp_path / f"slip-{n}.sqlite3",
                         "UPDATE sales SET receipt = replace(receipt, ?, ?)"
                         " WHERE seq = ?", (old, new, seq))
        result = _verify(card_config.state_dir, edited)
        assert result.bad_seq == seq and "receipt" in result.reason, (old, result)


SLIM_EDITS = [
    ("a key the event has", "replace(receipt, ',\"excerpt\":',"
     " ',\"qty\":1,\"excerpt\":')", "differs from its sale.completed"),
    ("a card slip on a cash sale", "replace(receipt, ',\"excerpt\":',"
     " ',\"terminal_lines\":[],\"excerpt\":')", "differs from its sale.completed"),
    ("carbon lines", "replace(receipt, ',\"excerpt\":',"
     " ',\"carbon_lines\":[\"0 g\"],\"excerpt\":')", "differs from its sale"),
    ("an excerpt field", "replace(receipt, '|EUR|', '|EUX|')", "QR excerpt"),
    ("JSON after the signature", "replace(receipt, '\"}', '\",\"x\":\"y\"}')",
     "QR excerpt is malformed"),
    ("the signature cut", "substr(receipt, 1, length(receipt) - 5) || '\"}'",
     "QR excerpt is malformed"),
    ("cut short", "substr(receipt, 1, 60)", "receipt"),
    ("another format", "replace(receipt, '{\"v\":2', '{\"v\":3')", "receipt"),
    ("empty", "x''", "receipt"),
    ("not JSON", "'{\"v\":2,'", "receipt"),
]


@pytest.mark.parametrize(("edit", "sql", "named"), SLIM_EDITS,
                         ids=[e[0] for e in SLIM_EDITS])
async def test_an_edited_slim_row_is_named_by_its_seq(
        aiohttp_client: Any, config: Config, tmp_path: Path, edit: str, sql: str,
        named: str) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src = state / JOURNAL_FILE
    sale = sqlite3.connect(src).execute(
        "SELECT seq FROM sales ORDER BY seq LIMIT 1 OFFSET 1").fetchone()[0]
    edited = _tamper(src, tmp_path / "j.sqlite3",
                     f"UPDATE sales SET receipt = {sql} WHERE seq = ?", (sale,))
    result = _verify(state, edited)
    assert result.bad_seq == sale and named in result.reason, result


def test_the_stored_part_is_encoded_in_one_key_order() -> None:
    stored = {"excerpt": "SB1|x", "terminal_lines": ["Zahlung erfolgt"]}
    raw = receipt_store.encode(stored)
    assert raw == b'{"v":2,"terminal_lines":["Zahlung erfolgt"],"excerpt":"SB1|x"}'
    assert receipt_store.is_slim(raw) and receipt_store.stored_of(raw) == stored
    assert receipt_store.encode({}) == b'{"v":2}'


def test_the_stored_part_of_a_whole_record_is_its_three_keys() -> None:
    whole = json.dumps({"seq": 3, "id": "x", "lines": [], "carbon_lines": ["a"],
                        "terminal_lines": ["b"], "excerpt": "SB1|y"}).encode()
    assert not receipt_store.is_slim(whole)
    assert receipt_store.stored_of(whole) == {"terminal_lines": ["b"],
                                              "excerpt": "SB1|y"}
    assert receipt_store.stored_of(whole.decode()) == receipt_store.stored_of(whole)


def test_a_slim_row_without_its_event_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        receipt_store.record_of(b'{"v":2,"excerpt":""}', 7, None)


TAX_A = {"code": "A", "rate_bp": 1900, "gross_minor": 590, "tax_minor": 94}
TAX_B = {"code": "B", "rate_bp": 700, "gross_minor": -640, "tax_minor": -42}


@pytest.mark.parametrize("taxes", [[], [TAX_A, TAX_B]])
def test_the_verifiers_signed_text_is_the_excerpts(taxes: list[Any]) -> None:
    data = {"currency": "EUR", "total_minor": -50, "taxes": taxes}
    digest = bytes(range(32))
    args = ("stall-1", 12, "2026-12-04T21:15:18.860733Z", data, digest, 3)
    assert sale_signed_text(*args) == excerpt_for_sale(*args).signed_text()
