"""Refunds and shift close through the API, checked against the journal on disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.billing.carbon import format_co2e
from daemon.billing.rounding import round_fraction
from daemon.journal.canonical import parse_canonical
from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import auth, pair, use_pages
from tests.test_sale_billing import CATALOG, body, cash, chf_config


@pytest.fixture
async def chf(aiohttp_client: Any, state_dir: Path) -> tuple[TestClient, str]:
    client = await aiohttp_client(create_app(chf_config(state_dir)))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token


async def post(chf: tuple[TestClient, str], path: str, data: dict[str, Any],
               status: int) -> dict[str, Any]:
    client, token = chf
    resp = await client.post(path, headers=auth(token), json=data)
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def ref() -> str:
    return uuid.uuid4().hex


async def test_full_refund_mirrors_rounded_cash(chf: tuple[TestClient, str]) -> None:
    sale = await post(chf, "/api/v1/sales", body([("TORTE", 1)], cash(2000)), 201)
    refund = await post(chf, f"/api/v1/sales/{sale['id']}/refunds",
                        {"client_ref": ref()}, 201)

    # 14,63 was rounded to 14,65 in cash: the full refund pays 14,65 back.
    assert refund["goods_minor"] == 1463 and refund["total_minor"] == 1465
    assert refund["tenders"] == [{"method": "cash", "amount_minor": 1465, "ref": ""}]
    again = await post(chf, f"/api/v1/sales/{sale['id']}/refunds",
                       {"client_ref": ref()}, 409)
    assert "refunded in full" in again["detail"]


async def test_refund_per_quantity_never_passes_the_line(
        chf: tuple[TestClient, str]) -> None:
    sale = await post(chf, "/api/v1/sales", body([("KERZE", 3)], cash(5000)), 201)
    path = f"/api/v1/sales/{sale['id']}/refunds"
    amounts = []
    for _ in range(3):
        one = await post(chf, path, {"client_ref": ref(),
                                     "lines": [{"line": 0, "qty": 1}]}, 201)
        amounts.append(one["goods_minor"])
    assert sum(amounts) == 2997
    gone = await post(chf, path, {"client_ref": ref(),
                                  "lines": [{"line": 0, "qty": 1}]}, 409)
    assert gone["status"] == 409 and "0 unit(s) left" in gone["detail"]


async def test_a_9_99_line_refunds_exactly_9_99(chf: tuple[TestClient, str]) -> None:
    card = await post(chf, "/api/v1/sales", body([("GUT", 1)], cash(1000)), 201)
    split = {"method": "split", "tenders": [
        {"method": "gift_card", "amount_minor": 500,
         "ref": card["gift_cards"][0]["code"]},
        {"method": "cash", "tendered_minor": 2000}]}
    sale = await post(chf, "/api/v1/sales",
                      body([("KERZE", 1), ("SEIFE", 1)], split), 201)
    refund = await post(chf, f"/api/v1/sales/{sale['id']}/refunds",
                        {"client_ref": ref(), "lines": [{"line": 0, "qty": 1}]}, 201)
    assert refund["goods_minor"] == 999
    assert [t["method"] for t in refund["tenders"]] == ["gift_card", "cash"]
    assert refund["tenders"][0]["amount_minor"] == 500
    taxes = refund["taxes"]
    assert all(t["net_minor"] + t["tax_minor"] == t["gross_minor"] for t in taxes)


async def test_two_tablets_refunding_at_once_cannot_pass_the_total(
        chf: tuple[TestClient, str], state_dir: Path) -> None:
    sale = await post(chf, "/api/v1/sales", body([("SEIFE", 2)], cash(2000)), 201)
    client, token = chf
    other = await pair(client, "Till 2")
    path = f"/api/v1/sales/{sale['id']}/refunds"

    async def attempt(tok: str) -> tuple[int, dict[str, Any]]:
        resp = await client.post(path, headers=auth(tok), json={
            "client_ref": ref(), "lines": [{"line": 0, "qty": 2}]})
        return resp.status, await resp.json()

    results = await asyncio.gather(*(attempt(t) for t in [token, other] * 4))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 7
    loser = next(body for status, body in results if status == 409)
    assert loser["title"] == "Conflict" and "left to refund" in loser["detail"]
    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    refunded = [json.loads(b)["data"]["total_minor"] for (b,) in conn.execute(
        "SELECT body FROM events WHERE kind = 'sale.refunded'")]
    assert refunded == [1100]


async def test_refund_is_idempotent_by_client_ref(chf: tuple[TestClient, str]) -> None:
    sale = await post(chf, "/api/v1/sales", body([("SEIFE", 2)], cash(2000)), 201)
    data = {"client_ref": ref(), "lines": [{"line": 0, "qty": 1}]}
    path = f"/api/v1/sales/{sale['id']}/refunds"
    first = await post(chf, path, data, 201)
    again = await post(chf, path, data, 200)
    assert first["id"] == again["id"]


@pytest.mark.parametrize(("data", "field", "status"), [
    ({"client_ref": "short"}, "client_ref", 422),
    ({"client_ref": "abcdefgh", "lines": []}, "lines", 422),
    ({"client_ref": "abcdefgh", "lines": [{"line": 0, "qty": 0}]}, "lines[0].qty",
     422),
    ({"client_ref": "abcdefgh", "lines": [{"line": 0, "qty": 1}] * 2},
     "lines[1].line", 422),
    ({"client_ref": "abcdefgh", "lines": [{"line": 7, "qty": 1}]}, "refund", 422),
    ({"client_ref": "abcdefgh", "amount": 5}, "amount", 422),
])
async def test_bad_refund_bodies(chf: tuple[TestClient, str], data: dict[str, Any],
                                 field: str, status: int) -> None:
    sale = await post(chf, "/api/v1/sales", body([("SEIFE", 2)], cash(2000)), 201)
    problem = await post(chf, f"/api/v1/sales/{sale['id']}/refunds", data, status)
    assert problem["field"] == field


async def test_refund_of_unknown_sale_is_404(chf: tuple[TestClient, str]) -> None:
    await post(chf, "/api/v1/sales/nope/refunds", {"client_ref": ref()}, 404)


def _assert_carbon_in_grams(chf: tuple[TestClient, str],
                            report: dict[str, Any]) -> None:
    """The Z report's footprint is whole grams: the sales' exact sum, half up."""
    carbon = report["carbon"]
    assert set(carbon) == {"co2e_g", "low_g", "high_g", "sales"}
    assert all(type(carbon[k]) is int for k in carbon)
    box = chf[0].app[STALLBOX]
    conn = sqlite3.connect(f"file:{box.config.state_dir / JOURNAL_FILE}?mode=ro",
                           uri=True)
    try:
        estimates = [parse_canonical(bytes(row[0]))["data"]["carbon"]["estimate"]
                     for row in conn.execute("SELECT body FROM events WHERE kind ="
                                             " 'sale.completed'")]
        closed = parse_canonical(bytes(conn.execute(
            "SELECT body FROM events WHERE seq = ?", (report["seq"],)).fetchone()[0]))
    finally:
        conn.close()
    exact = [sum((Fraction(e["total_kg"]) for e in estimates), Fraction(0)),
             sum((Fraction(e["range_kg"][0]) for e in estimates), Fraction(0)),
             sum((Fraction(e["range_kg"][1]) for e in estimates), Fraction(0))]
    assert [carbon["co2e_g"], carbon["low_g"], carbon["high_g"]] == \
        [round_fraction(kg * 1000, "half_up") for kg in exact]
    assert carbon["sales"] == len(estimates)
    assert closed["data"]["carbon"] == carbon  # the journal keeps grams too


async def test_shift_close_z_report(chf: tuple[TestClient, str]) -> None:
    client, token = chf
    await post(chf, "/api/v1/sales", body([("TORTE", 1)], cash(2000)), 201)
    kaffee = await post(chf, "/api/v1/sales", body([("KAFFEE", 2)], cash(1000)), 201)
    await post(chf, "/api/v1/sales", body([("BROT", 1)], cash(1500)), 201)
    await post(chf, f"/api/v1/sales/{kaffee['id']}/refunds",
               {"client_ref": ref(), "lines": [{"line": 0, "qty": 1}]}, 201)
    current = await (await client.get("/api/v1/shifts/current",
                                      headers=auth(token))).json()
    assert current["sales_count"] == 3

    report = await post(chf, "/api/v1/shifts/close", {
        "client_ref": ref(), "counted_cash_minor": 13000,
        "opening_float_minor": 10000}, 201)
    # Cash kept: 14,65 + 8,80 (6,40 + 0,40 fee + 2,00 deposit) + 14,65 = 38,10;
    # refunded one coffee: 3,20 paid out.
    assert report["cash"]["sales_minor"] == 1465 + 880 + 1465
    assert report["cash"]["refunds_minor"] == 320
    assert report["cash"]["expected_minor"] == 10000 + 3810 - 320
    assert report["cash"]["variance_minor"] == 13000 - (10000 + 3810 - 320)
    assert report["rounding_minor"] == 2 - 1
    assert report["refunds_count"] == 1 and report["refunds_minor"] == 320
    fees = {(f["kind"], f["packaging"]): f["amount_minor"] for f in report["fees"]}
    assert fees == {("fee", "cup"): 40, ("deposit", "cup"): 200}
    assert report["carbon"]["co2e_g"] > 0
    _assert_carbon_in_grams(chf, report)
    assert report["top_products"][0]["sku"] in ("TORTE", "BROT")
    assert sum(t["gross_minor"] for t in report["taxes"]) == report["gross_minor"]
    stored = await (await client.get(f"/api/v1/shifts/{report['seq']}",
                                     headers=auth(token))).json()
    assert stored["cash"] == report["cash"]
    assert stored["carbon"] == report["carbon"]
    use_pages(client, token)
    page = await (await client.get(f"/shifts/{report['seq']}")).text()
    grams = report["carbon"]
    shown = [format_co2e(Fraction(grams[k], 1000))
             for k in ("co2e_g", "low_g", "high_g")]
    assert f"{shown[0]} CO2e (range {shown[1]} to {shown[2]}; no offsets netted)" \
        in page
    assert "/" not in shown[0] and shown[0].endswith((" g", " kg"))
    empty = await post(chf, "/api/v1/shifts/close",
                       {"client_ref": ref(), "counted_cash_minor": 0}, 409)
    assert "nothing was sold" in empty["detail"]
