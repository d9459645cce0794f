"""Trust: seals, epoch keys and their erasure, receipts anyone can check, closures."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.config import Config
from daemon.journal import verify
from daemon.journal.store import Journal
from daemon.journal.verify import VerifyResult, verify_batch, verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.keys.epoch import key_files
from daemon.keys.signer import JournalSigner
from daemon.runtime import JOURNAL_FILE
from daemon.trust.lifecycle import _tick
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import DEMO_CSV, auth, make_config, pair

SKU = DEMO_CSV.read_text(encoding="utf-8").splitlines()[1].split(",")[0]
COLUMNS = ("seq", "ts", "kind", "body", "prev_hash", "hash")


async def _sell(client: TestClient, token: str, qty: int = 1) -> dict[str, Any]:
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": SKU, "qty": qty}],
            "payment": {"method": "cash", "tendered_minor": 1_000_000}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _close(client: TestClient, token: str, day: bool = False) -> dict[str, Any]:
    path, body = "/api/v1/shifts/close", {"client_ref": uuid.uuid4().hex,
                                          "counted_cash_minor": 0}
    if day:
        path, body = "/api/v1/days/close", {"client_ref": uuid.uuid4().hex}
    resp = await client.post(path, headers=auth(token), json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _excerpt(client: TestClient, sale_id: str) -> str:
    box = client.app[STALLBOX]
    raw = await box.reader.run(lambda c: c.execute(
        "SELECT receipt FROM sales WHERE id = ?", (sale_id,)).fetchone()[0])
    return json.loads(raw)["excerpt"]


@pytest.fixture
async def selling(client: TestClient, token: str) -> TestClient:
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    return client


async def _journal_after_a_shift(aiohttp_client: Any, config: Config) -> Path:
    """Run a daemon: sales, a shift close, more sales; stop it; return the state."""
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                      headers={"Content-Type": "text/csv", **auth(token)})
    for qty in (1, 2):
        await _sell(client, token, qty)
    await _close(client, token)
    await _sell(client, token, 3)
    await client.close()
    return config.state_dir


def _device_public(state: Path) -> bytes:
    return DeviceIdentity.load_or_create(state).public_bytes


def _full_verify(state: Path) -> VerifyResult:
    return verify_journal(state / JOURNAL_FILE, _device_public(state),
                          observers=replay_observers())


def _tamper(src: Path, dst: Path, sql: str, params: Any = ()) -> Path:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")
    conn = sqlite3.connect(dst)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("DROP TRIGGER events_append_only_delete")
    conn.execute("DROP TRIGGER seals_append_only_delete")
    conn.execute("DROP TRIGGER seals_append_only_update")
    conn.execute(sql, params)
    conn.commit()
    conn.close()
    return dst


def _flipped(value: Any) -> Any:
    if isinstance(value, int):
        return value ^ (1 << 40)  # a high byte, so it cannot hit another seq
    raw = bytearray(value.encode() if isinstance(value, str) else value)
    raw[len(raw) // 2] ^= 0x01
    return raw.decode("latin-1") if isinstance(value, str) else bytes(raw)


async def test_intact_journal_verifies_with_seals_epochs_and_replay(
        aiohttp_client: Any, config: Config) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    result = _full_verify(state)
    assert result.ok, result.reason
    assert result.epochs == 2 and result.seals >= 2
    assert result.sealed_seq == result.head_seq  # shutdown sealed the tail


async def test_flipping_any_byte_of_any_column_names_that_seq(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src = state / JOURNAL_FILE
    conn = sqlite3.connect(src)
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events").fetchall()
    conn.close()
    device = _device_public(state)
    for row in rows:
        for index, column in enumerate(COLUMNS):
            dst = tmp_path / f"j-{row[0]}-{column}.sqlite3"
            _tamper(src, dst, f"UPDATE events SET {column} = ? WHERE seq = ?",
                    (_flipped(row[index]), row[0]))
            result = verify_journal(dst, device, observers=replay_observers())
            assert result.bad_seq == row[0], (column, row[0], result)


async def test_edited_seal_or_read_model_is_named(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    seal_seq = sqlite3.connect(src).execute("SELECT MIN(seq) FROM seals").fetchone()[0]
    forged = _tamper(src, tmp_path / "seal.sqlite3",
                     "UPDATE seals SET signature = zeroblob(64) WHERE seq = ?",
                     (seal_seq,))
    assert verify_journal(forged, device).bad_seq == seal_seq
    sale = sqlite3.connect(src).execute("SELECT seq FROM sales").fetchone()[0]
    edited = _tamper(src, tmp_path / "sales.sqlite3",
                     "UPDATE sales SET total_minor = total_minor - 1 WHERE seq = ?",
                     (sale,))
    result = verify_journal(edited, device, observers=replay_observers())
    assert result.bad_seq == sale and "sales row" in result.reason


@pytest.mark.parametrize("removed", [1, 2, 3])
async def test_deleting_the_last_events_shows_as_truncation(
        aiohttp_client: Any, config: Config, tmp_path: Path, removed: int) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src = state / JOURNAL_FILE
    head = sqlite3.connect(src).execute("SELECT MAX(seq) FROM events").fetchone()[0]
    cut = _tamper(src, tmp_path / "cut.sqlite3", "DELETE FROM events WHERE seq > ?",
                  (head - removed,))
    result = verify_journal(cut, _device_public(state))
    assert not result.ok and "truncation" in result.reason


async def test_stripping_every_seal_and_certificate_is_refused(
        aiohttp_client: Any, config: Config, tmp_path: Path) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    stripped = _tamper(state / JOURNAL_FILE, tmp_path / "s.sqlite3",
                       "DELETE FROM seals")
    result = verify_journal(stripped, _device_public(state))
    assert not result.ok and "not signed" in result.reason


def _batch(path: Path, after: int) -> tuple[list[Any], list[Any], bytes]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT seq, ts, kind, body, prev_hash, hash FROM events"
                        " WHERE seq > ? ORDER BY seq", (after,)).fetchall()
    seals = conn.execute("SELECT seq, epoch, hash, signature FROM seals WHERE seq > ?"
                         " ORDER BY seq", (after,)).fetchall()
    prev = conn.execute("SELECT hash FROM events WHERE seq = ?", (after,)).fetchone()
    return rows, seals, bytes(prev[0]) if prev else bytes(32)


async def test_receiver_side_batch_check(aiohttp_client: Any, config: Config) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    path, device = state / JOURNAL_FILE, _device_public(state)
    keys: dict[int, bytes] = {}
    first = _batch(path, 0)
    sealed = first[1][0][0]
    unsealed_end = verify_batch(first[0][:sealed + 1], first[1][:1],
                                prev_hash=bytes(32), epoch_keys={},
                                stall_id="stall-1", device_public=device)
    assert not unsealed_end.ok and "does not end with a seal" in unsealed_end.reason
    whole = verify_batch(first[0], first[1], prev_hash=bytes(32), epoch_keys=keys,
                         stall_id="stall-1", device_public=device)
    assert whole.ok and set(keys) == {1, 2}
    truncated = verify_batch(first[0][:-1], first[1], prev_hash=bytes(32),
                             epoch_keys={}, stall_id="stall-1",
                             device_public=device)
    assert not truncated.ok and "truncation" in truncated.reason


async def test_stolen_state_dir_holds_no_closed_epoch_key(
        selling: TestClient, token: str, config: Config) -> None:
    state = config.state_dir
    closed: list[bytes] = []
    for _ in range(3):
        await _sell(selling, token)
        closed += [p.read_bytes() for p in key_files(state).values()]
        await _close(selling, token)
    live = [p.read_bytes() for p in key_files(state).values()]
    assert len(live) == 1 and live[0] not in closed and len(closed) == 3
    await selling.app[STALLBOX].journal.seal()
    for path in state.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for key in closed:
                for form in (key, key.hex().encode(),
                             base64.urlsafe_b64encode(key).rstrip(b"=")):
                    assert form not in content, path.name


async def test_start_erases_uncertified_and_closed_key_files(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / JOURNAL_FILE)
    device = DeviceIdentity.load_or_create(tmp_path)
    signer = JournalSigner(tmp_path, device, "stall-1")
    journal.signer = signer
    await journal.rotate("start")
    await journal.rotate("shift_close")
    (tmp_path / "epoch-1.key").write_bytes(bytes(32))  # left by a crash
    (tmp_path / "epoch-9.key").write_bytes(bytes(32))  # uncertified
    await journal.close()
    from daemon.trust.lifecycle import last_certified

    certified = last_certified(sqlite3.connect(tmp_path / JOURNAL_FILE))
    again = JournalSigner(tmp_path, device, "stall-1")
    again.adopt(certified)
    assert set(key_files(tmp_path)) == {2} and again.current is not None


async def test_epoch_rotates_when_too_old(selling: TestClient, token: str) -> None:
    box = selling.app[STALLBOX]
    signer = box.journal.signer
    assert signer is not None and signer.current is not None
    before = signer.current.epoch
    await _tick(box.journal, signer, epoch_max_s=0)
    assert signer.current.epoch == before + 1
    assert set(key_files(box.config.state_dir)) == {before + 1}


async def test_genuine_receipt_is_accepted_and_edited_ones_refused(
        selling: TestClient, token: str) -> None:
    sale = await _sell(selling, token, 2)
    text = await _excerpt(selling, sale["id"])
    receipt = await (await selling.get(f"/api/v1/sales/{sale['id']}/receipt",
                                       headers=auth(token))).text()
    assert text[:40] in receipt.replace("\n", "")
    await _close(selling, token)  # the signing key is erased; receipts still check
    ok = await (await selling.post("/api/v1/receipts/verify",
                                   json={"receipt": text})).json()
    assert ok["genuine"] and ok["sale"]["seq"] == sale["seq"]
    parts = text.split("|")
    edits = {5: str(int(parts[5]) - 100), 2: str(int(parts[2]) + 1),
             7: "0" * 16, 9: parts[9][:-2] + ("AA" if parts[9][-2:] != "AA" else "BB")}
    for index, value in edits.items():
        forged = "|".join(parts[:index] + [value] + parts[index + 1:])
        verdict = await (await selling.post("/api/v1/receipts/verify",
                                            json={"receipt": forged})).json()
        assert not verdict["genuine"], index


async def test_public_verify_page_needs_no_pairing(selling: TestClient,
                                                   token: str) -> None:
    sale = await _sell(selling, token)
    text = await _excerpt(selling, sale["id"])
    page = await selling.post("/verify", data={"receipt": text})
    assert page.status == 200 and "Genuine" in await page.text()
    bad = await selling.post("/verify", data={"receipt": "hello"})
    assert bad.status == 422 and "not a Stallbox receipt" in await bad.text()
    assert (await selling.get("/verify")).status == 200


async def test_cli_verify_and_verify_receipt(
        aiohttp_client: Any, config: Config, capsys: Any) -> None:
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                      headers={"Content-Type": "text/csv", **auth(token)})
    text = await _excerpt(client, (await _sell(client, token))["id"])
    await client.close()
    state = ["--state", str(config.state_dir)]
    from daemon.cli import main

    assert main(["verify", *state]) == 0
    assert "journal intact" in capsys.readouterr().out
    assert main(["verify-receipt", text, *state]) == 0
    assert main(["verify-receipt", text.replace("|EUR|", "|USD|"), *state]) == 1
    wrong = base64.urlsafe_b64encode(bytes(32)).decode().rstrip("=")
    assert main(["verify", *state, "--device-key", wrong]) == 1


async def test_verify_receipt_with_state_alone_uses_the_journals_stall_id(
        aiohttp_client: Any, state_dir: Path, capsys: Any) -> None:
    config = make_config(state_dir, stall={"id": "demo-stall"})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                      headers={"Content-Type": "text/csv", **auth(token)})
    text = await _excerpt(client, (await _sell(client, token))["id"])
    await client.close()
    assert text.startswith("SB1|demo-stall|")
    from daemon.cli import main

    state = ["--state", str(state_dir)]
    assert main(["verify-receipt", text, *state]) == 0
    assert "GENUINE: genuine" in capsys.readouterr().out
    other = text.replace("|demo-stall|", "|stall-1|")
    assert main(["verify-receipt", other, *state]) == 1
    assert "not 'demo-stall'" in capsys.readouterr().out


async def test_closures_carry_period_and_perpetual_totals(
        selling: TestClient, token: str) -> None:
    box = selling.app[STALLBOX]
    epoch = box.journal.signer.current.epoch  # type: ignore[union-attr]
    first = (await _sell(selling, token, 1))["total_minor"]
    shift = await _close(selling, token)
    assert shift["perpetual"]["sales"] == 1
    assert shift["perpetual"]["gross_minor"] == first
    second = (await _sell(selling, token, 2))["total_minor"]
    shift = await _close(selling, token)
    assert shift["perpetual"]["gross_minor"] == first + second
    day = await _close(selling, token, day=True)
    assert day["period"]["sales"] == 2 and day["from_seq"] == 0
    assert day["perpetual"]["by_tender"] == {"cash": first + second}
    assert box.journal.signer.current.epoch == epoch + 3  # type: ignore[union-attr]
    third = (await _sell(selling, token, 1))["total_minor"]
    day = await _close(selling, token, day=True)
    assert day["period"]["gross_minor"] == third
    assert day["perpetual"]["gross_minor"] == first + second + third


async def test_closing_the_day_twice_with_one_client_ref_closes_once(
        selling: TestClient, token: str) -> None:
    await _sell(selling, token)
    body = {"client_ref": uuid.uuid4().hex}
    first = await selling.post("/api/v1/days/close", json=body, headers=auth(token))
    again = await selling.post("/api/v1/days/close", json=body, headers=auth(token))
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["seq"] == (await again.json())["seq"]


async def test_no_key_material_in_logs(aiohttp_client: Any, config: Config,
                                       caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    state = await _journal_after_a_shift(aiohttp_client, config)
    device = (state / "device.key").read_bytes()
    epochs = [p.read_bytes() for p in key_files(state).values()]
    logs = caplog.text
    for key in (device, *epochs):
        for form in (key.hex(), base64.urlsafe_b64encode(key).decode().rstrip("="),
                     base64.b64encode(key).decode().rstrip("="), repr(key)):
            assert form not in logs


READ_MODEL_EDITS = [
    ("sales", "UPDATE sales SET tablet = 'x' WHERE seq = ?", "sales row"),
    ("sale_lines", "UPDATE sale_lines SET qty = qty + 1 WHERE sale_id ="
     " (SELECT id FROM sales WHERE seq = ?)", "sale_lines"),
    ("sale_lines", "UPDATE sale_lines SET name = name || ' ' WHERE sale_id ="
     " (SELECT id FROM sales WHERE seq = ?)", "sale_lines"),
    ("payments", "UPDATE payments SET change_minor = change_minor + 1 WHERE"
     " sale_id = (SELECT id FROM sales WHERE seq = ?)", "payments"),
    ("payments", "DELETE FROM payments WHERE sale_id ="
     " (SELECT id FROM sales WHERE seq = ?)", "payments"),
    ("receipt", "UPDATE sales SET receipt = replace(receipt, ',\"excerpt\":',"
     " ',\"qty\":1,\"excerpt\":') WHERE seq = ?", "receipt"),
    ("excerpt", "UPDATE sales SET receipt = replace(receipt, '|EUR|', '|EUX|')"
     " WHERE seq = ?", "excerpt"),
    ("carbon", "UPDATE sales SET receipt = replace(receipt, ',\"excerpt\":',"
     " ',\"carbon_lines\":[\"0 g\"],\"excerpt\":') WHERE seq = ?", "receipt"),
]


@pytest.mark.parametrize(("name", "sql", "named"), READ_MODEL_EDITS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(READ_MODEL_EDITS)])
@pytest.mark.parametrize(("processes", "child_share"),
                         [(1, 0.3), (2, 0.0), (2, 1.0), (2, None)])
async def test_an_edited_sale_read_model_is_named_by_its_seq(
        aiohttp_client: Any, config: Config, tmp_path: Path, name: str, sql: str,
        named: str, processes: int, child_share: float | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Single walk; split walk with the sale in the parent's part, in the child's;
    and blocks of one seq each, taken by whichever process comes first."""
    if child_share is None:
        monkeypatch.setattr(verify, "BLOCK_MIN_SEQS", 1)
        monkeypatch.setattr(verify, "BLOCKS_PER_JOURNAL", 10 ** 6)
    else:
        monkeypatch.setattr(verify, "CHILD_SHARE", child_share)
        monkeypatch.setattr(verify, "CLAIMING", False)
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    sale = sqlite3.connect(src).execute(
        "SELECT seq FROM sales ORDER BY seq LIMIT 1 OFFSET 1").fetchone()[0]
    edited = _tamper(src, tmp_path / f"{name}.sqlite3", sql, (sale,))
    result = verify_journal(edited, device, observers=replay_observers(),
                            processes=processes)
    assert result.bad_seq == sale and named in result.reason, result


@pytest.mark.parametrize("column", COLUMNS)
async def test_the_split_walk_names_a_flipped_byte_like_the_single_walk(
        aiohttp_client: Any, config: Config, tmp_path: Path, column: str) -> None:
    state = await _journal_after_a_shift(aiohttp_client, config)
    src, device = state / JOURNAL_FILE, _device_public(state)
    conn = sqlite3.connect(src)
    row = conn.execute(f"SELECT seq, {column} FROM events WHERE kind ="
                       " 'sale.completed' ORDER BY seq DESC LIMIT 1").fetchone()
    conn.close()
    dst = _tamper(src, tmp_path / "j.sqlite3",
                  f"UPDATE events SET {column} = ? WHERE seq = ?",
                  (_flipped(row[1]), row[0]))
    split = verify_journal(dst, device, observers=replay_observers(), processes=2)
    assert split.bad_seq == row[0], split
    assert verify_journal(src, device, observers=replay_observers(),
                          processes=2).ok
