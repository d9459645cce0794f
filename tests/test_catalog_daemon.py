"""Catalog import through the daemon: every real export, atomic, idempotent."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from daemon.catalog.importer import parse_catalog
from daemon.money import Currency
from daemon.web.keys import STALLBOX
from scripts.daemonproc import run_cli
from tests.conftest import SHARED_DATA, auth

EXPORTS = sorted((SHARED_DATA / "catalogs").rglob("*.csv"))


async def post_csv(client: TestClient, token: str, data: bytes | io.BytesIO,
                   query: str = "") -> tuple[int, dict]:
    resp = await client.post(f"/api/v1/catalog/import{query}", data=data,
                             headers={"Content-Type": "text/csv", **auth(token)})
    return resp.status, await resp.json()


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: p.name)
async def test_every_shared_export_imports_once(client: TestClient, token: str,
                                                path: Path) -> None:
    data = await asyncio.to_thread(path.read_bytes)
    expected = len(parse_catalog(data, currency=Currency.of("EUR")).products)
    status, body = await post_csv(client, token, data)
    assert status == 200, body
    assert body["imported"] == body["changed"] == expected > 0
    box = client.app[STALLBOX]
    seq = box.journal.head_seq
    status, again = await post_csv(client, token, data)
    assert (status, again["imported"], again["changed"]) == (200, expected, 0)
    assert box.journal.head_seq == seq, "re-import must not journal anything"


def test_exports_are_all_there() -> None:
    assert len(EXPORTS) == 7


BAD_FILE = ("sku,name,price,tax_class\nA,Apfel,\"1,20\",reduced\n"
            "B,Birne,-3,reduced\nC,,\"2,00\",reduced\nD,Dattel,\"4,00\",reduced\n")


async def test_bad_rows_import_nothing_unless_skipped(client: TestClient,
                                                      token: str) -> None:
    status, body = await post_csv(client, token, BAD_FILE.encode())
    assert status == 422
    assert [r["row"] for r in body["rejected"]] == [3, 4]
    assert "negative" in body["rejected"][0]["reason"]
    products = await client.get("/api/v1/products", headers=auth(token))
    assert (await products.json())["items"] == []
    status, body = await post_csv(client, token, BAD_FILE.encode(),
                                  "?skip_invalid=true")
    assert (status, body["imported"]) == (200, 2)
    assert len(body["rejected"]) == 2


@pytest.mark.parametrize("data", [
    b"", b"sku,name,price\n", "name,price\nK\xe4se,1".encode("latin-1"),
    "name,price\nTee,1\n".encode("utf-16"), b"name,price\n\"Tee,1\n",
    os.urandom(10 * 1024 * 1024),
], ids=["empty", "header-only", "latin-1", "utf-16", "truncated-quote",
        "10MB-junk"])
async def test_malformed_files_get_a_clear_answer(client: TestClient, token: str,
                                                  data: bytes) -> None:
    status, body = await post_csv(client, token, io.BytesIO(data))
    assert status == 422, body
    assert body["detail"]
    box = client.app[STALLBOX]
    assert await box.products("", "", 5) == []


async def test_oversized_file_gets_413(client: TestClient, token: str) -> None:
    status, body = await post_csv(client, token, io.BytesIO(b"a" * (21 * 2**20)))
    assert status == 413
    assert body["status"] == 413


def test_cli_imports_without_a_running_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    export = (SHARED_DATA / "catalogs" / "shopify"
              / "septembrea_candles_crafts_products_export.csv")
    first = run_cli("import-catalog", str(export), "--state", str(state))
    assert first.returncode == 0, first.stderr
    assert "shopify" in first.stdout
    again = run_cli("import-catalog", str(export), "--state", str(state))
    assert " 0 changed" in again.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_FILE, encoding="utf-8")
    refused = run_cli("import-catalog", str(bad), "--state", str(state))
    assert refused.returncode == 1
    assert "row 3" in refused.stderr and "nothing imported" in refused.stderr
    assert run_cli("verify", "--state", str(state)).returncode == 0
