"""Sales through the API with the billing engine: rounding, tenders, fees, carbon."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.billing.carbon import estimate_from_record, estimate_to_json
from daemon.config import Config
from daemon.journal.canonical import canonical_bytes
from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from tests.conftest import auth, make_config, page_headers, pair

CATALOG = (
    "sku,name,price,tax_class,category,weight_g,packaging,carbon_factor,gift_card\n"
    "HONIG,Blütenhonig,\"14,68\",reduced,Feinkost,500,jar,honey,\n"
    "KAFFEE,Kaffee to go,\"3,20\",reduced,Getränke,,cup,,\n"
    "SEIFE,Naturseife,\"5,50\",standard,Kosmetik,100,,soap,\n"
    "KERZE,Kerze,\"9,99\",standard,Kerzen,220,,,\n"
    "BROT,Bauernbrot,\"14,66\",reduced,Brot,750,,bread_sourdough,\n"
    "TORTE,Torte,\"14,63\",reduced,Desserts,300,,,\n"
    "KORB,Weidenkorb,\"14,68\",standard,Körbe,,,crafts_misc,\n"
    "GUT,Gutschein,\"10,00\",exempt,Gutscheine,,,,true\n"
).encode()
BILLING: dict[str, dict[str, Any]] = {
    "cash": {"rounding_step": "0.05", "rounding_mode": "half_up"},
    "packaging": {
        "cup": {"label": "Becher", "fee": "0.20", "deposit": "1.00",
                "own_container_credit": "0.10"},
        "jar": {"label": "Glas", "deposit": "0.50"},
    },
    "carbon": {"usd_per_unit": "1.0937",
               "categories": {"Desserts": "creme_brulee"}},
    "contribution": {"project": "Moorschutz Schwarzwald", "price_per_kg": "0.10"},
}


def chf_config(state_dir: Path) -> Config:
    """A CHF stall that rounds cash to 0,05, with packaging, carbon, contribution."""
    return make_config(state_dir, stall={"currency": "CHF"}, **BILLING)


@pytest.fixture
async def chf(aiohttp_client: Any, state_dir: Path) -> tuple[TestClient, str]:
    client = await aiohttp_client(create_app(chf_config(state_dir)))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client, token


def body(lines: list[Any], payment: dict[str, Any], **extra: Any) -> dict[str, Any]:
    items = [ln if isinstance(ln, dict) else {"sku": ln[0], "qty": ln[1]}
             for ln in lines]
    return {"client_ref": uuid.uuid4().hex, "lines": items, "payment": payment,
            **extra}


def cash(tendered: int) -> dict[str, Any]:
    return {"method": "cash", "tendered_minor": tendered}


async def sell(chf: tuple[TestClient, str], data: dict[str, Any],
               status: int = 201) -> dict[str, Any]:
    client, token = chf
    resp = await client.post("/api/v1/sales", headers=auth(token), json=data)
    assert resp.status == status, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


@pytest.mark.parametrize(("sku", "total", "cash_kept", "rounding"), [
    ("BROT", 1466, 1465, -1), ("TORTE", 1463, 1465, 2), ("SEIFE", 550, 550, 0),
])
async def test_chf_cash_is_rounded_as_its_own_line(
        chf: tuple[TestClient, str], sku: str, total: int, cash_kept: int,
        rounding: int) -> None:
    sale = await sell(chf, body([(sku, 1)], cash(2000)))

    assert sale["total_minor"] == total
    assert sale["rounding_minor"] == rounding
    assert sale["payments"][0]["amount_minor"] == cash_kept
    assert sale["change_minor"] == 2000 - cash_kept
    assert sum(t["gross_minor"] for t in sale["taxes"]) == total


async def test_split_voucher_and_cash_rounds_only_the_cash(
        chf: tuple[TestClient, str]) -> None:
    split = {"method": "split", "tenders": [
        {"method": "voucher", "amount_minor": 1000, "ref": "V-2024-0042"},
        {"method": "cash", "tendered_minor": 500}]}
    sale = await sell(chf, body([("KORB", 1)], split))

    # The split: 10,00 not in cash, the rest of 14,68 in cash -> 4,70.
    assert sale["total_minor"] == 1468
    voucher, cash_paid = sale["payments"]
    assert (voucher["method"], voucher["amount_minor"]) == ("voucher", 1000)
    assert (cash_paid["amount_minor"], sale["rounding_minor"]) == (470, 2)
    assert sale["change_minor"] == 30
    client, token = chf
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert "Cash rounding" in text and "+0,02" in text
    assert "Voucher ...0042" in text


async def test_card_in_a_split_needs_the_terminal(
        chf: tuple[TestClient, str]) -> None:
    split = {"method": "split", "tenders": [
        {"method": "card", "amount_minor": 500, "ref": "x"},
        {"method": "cash", "tendered_minor": 100}]}
    problem = await sell(chf, body([("SEIFE", 1)], split), 422)
    assert problem["field"] == "payment.tenders[0].ref"  # the terminal's to say
    del split["tenders"][0]["ref"]
    problem = await sell(chf, body([("SEIFE", 1)], split), 404)
    assert "[terminal]" in problem["detail"]  # tests/test_card_split.py: with one


async def test_packaging_fee_deposit_credit_and_return_are_lines(
        chf: tuple[TestClient, str]) -> None:
    lines = [{"sku": "KAFFEE", "qty": 2},
             {"sku": "KAFFEE", "qty": 1, "own_container": True}]
    sale = await sell(chf, body(lines, cash(2000),
                                deposit_returns=[{"packaging": "cup", "qty": 1}]))

    kinds = [(ln["kind"], ln["qty"], ln["amount_minor"]) for ln in sale["lines"]]
    assert kinds == [("goods", 2, 640), ("goods", 1, 320), ("fee", 2, 40),
                     ("deposit", 2, 200), ("credit", 1, -10),
                     ("deposit-return", 1, -100)]
    assert sale["total_minor"] == 640 + 320 + 40 + 200 - 10 - 100


async def test_discounts_per_line_and_per_sale(chf: tuple[TestClient, str]) -> None:
    lines = [{"sku": "SEIFE", "qty": 2, "discount": {"amount_minor": 100}},
             {"sku": "BROT", "qty": 1}]
    sale = await sell(chf, body(lines, cash(5000),
                                discount={"percent_bp": 1000, "label": "Stamm"}))

    base = 1100 - 100 + 1466
    assert sale["sale_discount"]["amount_minor"] == (base + 5) // 10
    assert sale["total_minor"] == base - (base + 5) // 10
    assert sum(t["gross_minor"] for t in sale["taxes"]) == sale["total_minor"]


async def test_contribution_is_a_line_and_never_lowers_the_footprint(
        chf: tuple[TestClient, str]) -> None:
    plain = await sell(chf, body([("HONIG", 2)], cash(5000)))
    given = await sell(chf, body([("HONIG", 2)], cash(5000), contribution=True))

    line = given["lines"][-1]
    assert line["kind"] == "contribution" and "Moorschutz" in line["name"]
    assert given["carbon"]["co2e_g"] == plain["carbon"]["co2e_g"]
    kg = plain["carbon"]["co2e_g"] / 1000
    assert line["amount_minor"] == round(kg * 10)
    client, token = chf
    text = await (await client.get(f"/api/v1/sales/{given['id']}/receipt",
                                   headers=auth(token))).text()
    for claim in ("neutral", "offset", "compensat"):
        assert claim not in text.lower().replace("no offsets netted", "")


async def test_carbon_estimate_is_recomputed_from_the_journal_byte_for_byte(
        chf: tuple[TestClient, str], state_dir: Path) -> None:
    lines = [("HONIG", 1), ("SEIFE", 2), ("KERZE", 1), ("TORTE", 1), ("GUT", 1)]
    sale = await sell(chf, body(lines, cash(10000)))

    conn = sqlite3.connect(state_dir / JOURNAL_FILE)
    row = conn.execute("SELECT body FROM events WHERE seq = ?",
                       (sale["seq"],)).fetchone()
    carbon = json.loads(row[0])["data"]["carbon"]
    recomputed = estimate_to_json(estimate_from_record(carbon["record"]))
    assert recomputed.encode() == canonical_bytes(carbon["estimate"])
    factors = {f["id"] for f in carbon["record"]["factors"]}
    assert "agribalyse-3.1:31008" in factors  # honey, by catalog reference
    assert "agribalyse-3.1:39213" in factors  # Torte, by category mapping
    assert carbon["flags"] == [["KERZE", "unmapped"]]
    assert [ln["sku"] for ln in carbon["record"]["lines"]] == [
        "HONIG", "SEIFE", "KERZE", "TORTE"]  # the gift card is money, not goods


async def test_receipt_shows_the_carbon_block(chf: tuple[TestClient, str]) -> None:
    sale = await sell(chf, body([("HONIG", 1)], cash(2000)))
    client, token = chf
    text = await (await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                                   headers=auth(token))).text()
    assert "Est. footprint" in text and "CO2e" in text and "(range" in text
    assert "Method stallbox-co2e 1.0" in text
    assert "ADEME Agribalyse 3.1" in text
    assert "No offsets netted." in text
    assert "Methodology:\n/methodology" in text


async def test_products_carry_their_carbon_flag(chf: tuple[TestClient, str]) -> None:
    client, token = chf
    items = (await (await client.get("/api/v1/products", headers=auth(token)))
             .json())["items"]
    flags = {i["sku"]: (i["carbon_flag"], i["carbon_factor_how"]) for i in items}
    assert flags["KERZE"] == ("unmapped", "default")
    assert flags["HONIG"] == ("", "catalog")
    assert flags["TORTE"] == ("", "category")


@pytest.mark.parametrize(("extra", "field"), [
    ({"payment": {"method": "voucher", "amount_minor": 100}}, "payment.ref"),
    ({"payment": {"method": "cash", "tendered_minor": 9999, "ref": "x"}},
     "payment.ref"),
    ({"payment": {"method": "split", "tenders": [cash(1), cash(2)]}},
     "payment.tenders"),
    ({"payment": {"method": "split"}}, "payment.tenders"),
    ({"payment": {"method": "bitcoin", "tendered_minor": 1}}, "payment.method"),
    ({"discount": {"amount_minor": 1, "percent_bp": 1}}, "discount"),
    ({"discount": {"percent_bp": 10001}}, "discount.percent_bp"),
    ({"discount": {"amount_minor": 10**9}}, "discount"),
    ({"deposit_returns": [{"packaging": "jar", "qty": 0}]}, "deposit_returns[0].qty"),
    ({"deposit_returns": [{"packaging": "box", "qty": 1}]},
     "deposit_returns[0].packaging"),
    ({"contribution": "yes"}, "contribution"),
    ({"lines": [{"sku": "SEIFE", "qty": 1, "own_container": True}]},
     "lines[0].own_container"),
    ({"lines": [{"sku": "SEIFE", "qty": 1, "discount": {"percent_bp": "5"}}]},
     "lines[0].discount.percent_bp"),
    ({"payment": {"method": "cash", "tendered_minor": 100}},
     "payment.tendered_minor"),
])
async def test_bad_billing_fields_get_422_naming_the_field(
        chf: tuple[TestClient, str], extra: dict[str, Any], field: str) -> None:
    data = {**body([("SEIFE", 1)], cash(1000)), **extra}
    problem = await sell(chf, data, 422)
    assert problem["field"] == field, problem
    client, token = chf
    listing = await (await client.get("/api/v1/sales", headers=auth(token))).json()
    assert listing["items"] == []


async def test_till_shows_fees_and_takes_the_rounded_cash(
        chf: tuple[TestClient, str]) -> None:
    client, token = chf
    cookie = page_headers(token)
    await client.post("/till/cart", data={"action": "add", "sku": "KAFFEE"},
                      headers=cookie, allow_redirects=False)
    page = await (await client.get("/till", headers=cookie)).text()
    assert "Becher fee" in page and "Becher deposit" in page
    assert "4,40" in page  # 3,20 + 0,20 fee + 1,00 deposit
    ref = page.split('name="client_ref" value="')[1].split('"')[0]
    resp = await client.post("/till/checkout", headers=cookie,
                             data={"client_ref": ref, "quick": "exact",
                                   "tendered": ""}, allow_redirects=False)
    assert resp.status == 303, await resp.text()


async def test_a_negative_cart_is_a_cash_payout(chf: tuple[TestClient, str]) -> None:
    sale = await sell(chf, body([("KAFFEE", 1)], cash(0),
                                deposit_returns=[{"packaging": "cup", "qty": 5}]))
    # 3,20 + 0,20 fee + 1,00 deposit - 5 x 1,00 returned = -0,60 paid out.
    assert sale["total_minor"] == -60
    assert sale["payments"][0]["amount_minor"] == -60
    assert sale["change_minor"] == 0
