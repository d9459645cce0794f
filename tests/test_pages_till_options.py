"""Till page options (#4): discounts, own containers, returns, contribution, tenders.

A CHF stall that rounds cash to 0,05, with cup and jar packaging and a climate
contribution, driven through the till's forms as a browser without JavaScript
posts them.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.web.app import create_app
from tests.conftest import auth, pair, use_pages
from tests.test_sale_billing import CATALOG, chf_config

HOSTILE = "<script>alert(1)</script>"
HOSTILE_CSV = ("sku,name,price,tax_class,packaging\n"
               f'EVIL,"{HOSTILE}","2,00",standard,cup\n')


@pytest.fixture
async def till(aiohttp_client: Any, state_dir: Path) -> TestClient:
    """A CHF till paired by cookie, with the billing catalog and a hostile cup item."""
    client = await aiohttp_client(create_app(chf_config(state_dir)))
    token = await pair(client)
    for data in (CATALOG, HOSTILE_CSV.encode()):
        resp = await client.post("/api/v1/catalog/import", data=data,
                                 headers={"Content-Type": "text/csv", **auth(token)})
        assert resp.status == 200, await resp.text()
    use_pages(client, token)
    client.token = token  # type: ignore[attr-defined]
    return client


async def post(client: TestClient, path: str, status: int = 200,
               **fields: str) -> tuple[str, str]:
    """Post a form as a browser does; return (final path, page text)."""
    resp = await client.post(path, data=fields)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[-2000:])
    return resp.url.path, text


async def add(client: TestClient, *skus: str) -> str:
    text = ""
    for sku in skus:
        _, text = await post(client, "/till/cart", action="add", sku=sku)
    return text


async def option(client: TestClient, status: int = 200, **fields: str) -> str:
    return (await post(client, "/till/cart", status, **fields))[1]


def total(text: str) -> str:
    match = re.search(r'id="total">([^<]+)<', text)
    assert match, "no total on the page"
    return match.group(1)


async def checkout(client: TestClient, status: int = 200,
                   **fields: str) -> tuple[str, str]:
    text = await (await client.get("/till")).text()
    ref = re.search(r'name="client_ref" value="([^"]+)"', text)
    assert ref
    fields.setdefault("client_ref", ref.group(1))
    return await post(client, "/till/checkout", status, **fields)


async def sales(client: TestClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/sales",
                            headers=auth(client.token))  # type: ignore[attr-defined]
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def sale(client: TestClient, sale_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/sales/{sale_id}",
                            headers=auth(client.token))  # type: ignore[attr-defined]
    result: dict[str, Any] = await resp.json()
    return result


# ---- discounts -----------------------------------------------------------------

async def test_line_discount_amount_and_percent(till: TestClient) -> None:
    await add(till, "KERZE", "KERZE", "SEIFE")  # 2 x 9,99 + 5,50
    text = await option(till, action="line-discount", sku="KERZE", value="2",
                        kind="amount")
    assert total(text) == "23,48 CHF" and "−2,00 CHF" in text
    text = await option(till, action="line-discount", sku="SEIFE", value="10",
                        kind="percent")
    assert total(text) == "22,93 CHF" and "10 % −0,55 CHF" in text
    path, _ = await checkout(till, quick="exact")
    sold = await sale(till, path.rsplit("/", 1)[1])
    assert [ln["line_discount_minor"] for ln in sold["lines"]] == [200, 55]
    assert sold["total_minor"] == 2293 and sold["rounding_minor"] == 2


async def test_line_discount_off_and_sale_discount(till: TestClient) -> None:
    await add(till, "KERZE", "SEIFE")
    await option(till, action="line-discount", sku="KERZE", value="1", kind="amount")
    text = await option(till, action="line-discount-off", sku="KERZE")
    assert total(text) == "15,49 CHF"
    text = await option(till, action="sale-discount", value="12,5", kind="percent")
    assert 'id="sale-discount">−1,94 CHF' in text and total(text) == "13,55 CHF"
    text = await option(till, action="sale-discount-off")
    assert "sale-discount" not in text.split('id="options"')[1].split("</details>")[1]
    assert total(text) == "15,49 CHF"


@pytest.mark.parametrize(("value", "kind", "words"), [
    ("abc", "amount", "not a decimal amount"),
    ("-1", "amount", "more than zero"),
    ("0", "percent", "more than 0"),
    ("150", "percent", "at most 100"),
    ("12,345", "percent", "percent such as"),
    ("1e3", "percent", "percent such as"),
    ("9" * 30, "amount", "amount"),
    ("5", "bogus", "amount or percent"),
    ("20", "amount", "discount"),  # more than the 9,99 line
])
async def test_bad_discounts_keep_the_cart(till: TestClient, value: str, kind: str,
                                           words: str) -> None:
    await add(till, "KERZE")
    text = await option(till, 422, action="line-discount", sku="KERZE",
                        value=value, kind=kind)
    assert words in text and total(text) == "9,99 CHF"
    text = await option(till, 422, action="sale-discount", value=value, kind=kind)
    assert total(text) == "9,99 CHF" and "Sale discount" in text
    assert await sales(till) == []


async def test_oversized_and_unknown_fields_are_refused(till: TestClient) -> None:
    await add(till, "KERZE")
    text = await option(till, 422, action="line-discount", sku="KERZE",
                        value="1" * 201, kind="amount")
    assert "too long" in text
    text = await option(till, 422, action="explode", sku="KERZE")
    assert "unknown cart action" in text
    text = await option(till, 422, action="line-discount", sku="NOPE", value="1",
                        kind="amount")
    assert "not in the cart" in text and total(text) == "9,99 CHF"


# ---- packaging and contribution -------------------------------------------------

async def test_own_container_toggles_the_credit(till: TestClient) -> None:
    text = await add(till, "KAFFEE")  # 3,20 + cup fee 0,20 + deposit 1,00
    assert total(text) == "4,40 CHF" and "Own container" in text
    text = await option(till, action="own-container", sku="KAFFEE")
    assert total(text) == "3,10 CHF" and 'aria-pressed="true"' in text
    text = await option(till, action="own-container", sku="KAFFEE")
    assert total(text) == "4,40 CHF"


async def test_own_container_only_where_packaging_gives_credit(
        till: TestClient) -> None:
    text = await add(till, "SEIFE", "HONIG")  # no packaging; jar without credit
    assert "own-container" not in text
    for sku in ("SEIFE", "HONIG"):
        text = await option(till, 422, action="own-container", sku=sku)
        assert "no packaging to swap" in text and total(text) == "20,68 CHF"


async def test_deposit_returns_and_payout(till: TestClient) -> None:
    await add(till, "KAFFEE")
    text = await option(till, action="deposit-return", packaging="cup", qty="2")
    assert total(text) == "2,40 CHF" and "2 × Becher back" in text
    text = await option(till, action="deposit-return", packaging="cup", qty="6")
    assert "Pay out" in text and total(text) == "-1,60 CHF"
    path, text = await checkout(till, quick="exact")
    assert "Pay out to the customer" in text and 'id="change">1,60 CHF' in text
    assert (await sale(till, path.rsplit("/", 1)[1]))["total_minor"] == -160


@pytest.mark.parametrize(("packaging", "qty", "words"), [
    ("none", "1", "carries a deposit"), ("cup", "x", "whole number"),
    ("cup", "99999", "whole number"), (HOSTILE, "1", "carries a deposit"),
])
async def test_bad_deposit_returns_change_nothing(till: TestClient, packaging: str,
                                                  qty: str, words: str) -> None:
    await add(till, "KAFFEE")
    text = await option(till, 422, action="deposit-return", packaging=packaging,
                        qty=qty)
    assert words in text and total(text) == "4,40 CHF" and HOSTILE not in text


async def test_deposit_return_undo(till: TestClient) -> None:
    await add(till, "KAFFEE")
    await option(till, action="deposit-return", packaging="cup", qty="1")
    text = await option(till, action="deposit-return", packaging="cup", qty="0")
    assert total(text) == "4,40 CHF" and "Becher back" not in text


async def test_contribution_is_a_named_project_never_a_claim(till: TestClient) -> None:
    text = await add(till, "HONIG")
    assert "Climate contribution to <bdi>Moorschutz Schwarzwald</bdi>" in text
    before = total(text)
    text = await option(till, action="contribution", value="on")
    assert total(text) != before and 'aria-pressed="true"' in text
    lowered = text.lower()
    assert "neutral" not in lowered and "offset" not in lowered
    path, _ = await checkout(till, quick="exact")
    sold = await sale(till, path.rsplit("/", 1)[1])
    assert sold["lines"][-1]["kind"] == "contribution"
    text = await add(till, "HONIG")
    assert 'aria-pressed="false"' in text  # the new cart starts without it


async def test_clear_drops_the_options(till: TestClient) -> None:
    await add(till, "KAFFEE")
    await option(till, action="sale-discount", value="1", kind="amount")
    await option(till, action="contribution", value="on")
    await option(till, action="clear")
    text = await add(till, "KAFFEE")
    assert total(text) == "4,40 CHF"


async def test_options_on_an_empty_cart_say_so(till: TestClient) -> None:
    text = await option(till, 422, action="sale-discount", value="1", kind="amount")
    assert "cart is empty" in text


# ---- tenders ---------------------------------------------------------------------

async def test_voucher_pays_the_whole_total(till: TestClient) -> None:
    await add(till, "KERZE")
    path, text = await checkout(till, method="voucher", ref="V-2024-0001")
    assert path.startswith("/till/change/") and 'id="change">0,00 CHF' in text
    assert "Voucher" in text
    sold = await sale(till, path.rsplit("/", 1)[1])
    assert sold["payments"] == [{"method": "voucher", "amount_minor": 999,
                                 "tendered_minor": 999, "change_minor": 0,
                                 "status": "approved"}]


async def test_split_voucher_and_cash_rounds_only_the_cash(till: TestClient) -> None:
    await add(till, "HONIG", "SEIFE")  # 14,68 + jar deposit 0,50 + 5,50
    path, text = await checkout(till, method="voucher", ref="V-7", amount="10",
                                tendered="20")
    sold = await sale(till, path.rsplit("/", 1)[1])
    assert [(p["method"], p["amount_minor"]) for p in sold["payments"]] == [
        ("voucher", 1000), ("cash", 1070)]
    assert sold["rounding_minor"] == 2 and sold["change_minor"] == 930
    assert 'id="change">9,30 CHF' in text
    assert 'id="change-rounding">+0,02 CHF' in text and "Due in cash" in text


async def gift_card(client: TestClient) -> str:
    """Sell a 10,00 gift card through the API; return its code."""
    token = client.token  # type: ignore[attr-defined]
    resp = await client.post("/api/v1/sales", headers=auth(token), json={
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": "GUT", "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 1000}})
    assert resp.status == 201, await resp.text()
    code: str = (await resp.json())["gift_cards"][0]["code"]
    return code


async def test_gift_card_with_the_rest_exact_in_cash(till: TestClient) -> None:
    code = await gift_card(till)
    await add(till, "TORTE")  # 14,63 -> 4,63 in cash, rounded 4,65
    path, text = await checkout(till, method="gift_card", ref=code, amount="10",
                                rest="exact")
    sold = await sale(till, path.rsplit("/", 1)[1])
    assert [p["amount_minor"] for p in sold["payments"]] == [1000, 465]
    assert 'id="change">0,00 CHF' in text and "Gift card" in text


async def test_gift_card_short_of_money_keeps_the_cart(till: TestClient) -> None:
    code = await gift_card(till)
    await add(till, "TORTE")
    _, text = await checkout(till, 409, method="gift_card", ref=code, amount="12",
                             tendered="5")
    assert "10,00 CHF left" in text and total(text) == "14,63 CHF"


@pytest.mark.parametrize(("fields", "words"), [
    ({"method": "voucher", "ref": ""}, "type the voucher number"),
    ({"method": "voucher", "ref": "V" * 65}, "at most 64"),
    ({"method": "voucher", "ref": "V\u0000X"}, "printable"),
    ({"method": "voucher", "ref": "G", "amount": "50"}, "exceeds"),
    ({"method": "gift_card", "ref": "G", "amount": "5", "tendered": "9"},
     "16 letters"),
    ({"method": "voucher", "ref": "V", "amount": "-3"}, "more than zero"),
    ({"method": "voucher", "ref": "V", "amount": "zehn"}, "not a decimal"),
    ({"method": "voucher", "ref": "V", "amount": "5"}, "cash given for the rest"),
    ({"method": "voucher", "ref": "V", "amount": "5", "tendered": "1"}, "less than"),
    ({"method": "card-ish", "ref": "V"}, "choose voucher or gift card"),
    ({"method": "voucher", "ref": "V", "tendered": "9" * 201}, "too long"),
])
async def test_bad_tenders_sell_nothing_and_keep_the_form(
        till: TestClient, fields: dict[str, str], words: str) -> None:
    await add(till, "KERZE")
    _, text = await checkout(till, 422, **fields)
    assert words in text and total(text) == "9,99 CHF"
    assert await sales(till) == []


async def test_hostile_voucher_ref_is_escaped(till: TestClient) -> None:
    await add(till, "KERZE")
    _, text = await checkout(till, 422, method="voucher", ref=HOSTILE, amount="5")
    assert HOSTILE not in text and "&lt;script&gt;" in text  # kept in the form
    path, _ = await checkout(till, method="voucher", ref=HOSTILE)
    text = await (await till.get(f"/sales/{path.rsplit('/', 1)[1]}")).text()
    assert HOSTILE not in text


async def test_split_checkout_twice_makes_one_sale(till: TestClient) -> None:
    await add(till, "KERZE")
    text = await (await till.get("/till")).text()
    ref = re.search(r'name="client_ref" value="([^"]+)"', text)
    assert ref
    form = {"client_ref": ref.group(1), "method": "voucher", "ref": "V-1",
            "amount": "5", "tendered": "10"}
    first, _ = await post(till, "/till/checkout", **form)
    again, _ = await post(till, "/till/checkout", **form)
    assert first == again and len(await sales(till)) == 1


async def test_hostile_product_with_options_is_escaped(till: TestClient) -> None:
    await add(till, "EVIL")
    await option(till, action="own-container", sku="EVIL")
    text = await option(till, action="line-discount", sku="EVIL", value="50",
                        kind="percent")
    assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
