"""The JSON API: pairing, auth on every route, sales, idempotency, bad input."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.pairing import token_hash
from daemon.web.authz import ROUTE_ROLES, Role
from daemon.web.keys import PUBLIC_PATHS, STALLBOX
from tests.conftest import auth, page_headers, pair

CATALOG = (
    "sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    "BROT,Bauernbrot,\"4,50\",reduced,Brot,,750,no\n"
    "KERZE-L,Bienenwachskerze,\"12,90\",standard,Kerzen,groß,300,no\n"
    "CREME,Crème brûlée,\"3,80\",reduced,Dessert,,120,no\n"
    "GUTSCHEIN,Gutschein,\"25,00\",exempt,Gutscheine,,,yes\n"
).encode()


async def stock(client: TestClient, token: str) -> None:
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()


def sale_body(lines: list[tuple[str, int]], tendered: int,
              ref: str | None = None) -> dict[str, Any]:
    return {"client_ref": ref or uuid.uuid4().hex,
            "lines": [{"sku": s, "qty": q} for s, q in lines],
            "payment": {"method": "cash", "tendered_minor": tendered}}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_route_refuses_an_unpaired_client(client: TestClient) -> None:
    public = PUBLIC_PATHS
    checked = 0
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path in public or route.method == "HEAD":
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Cookie": "stallbox_token=forged"}):
            resp = await client.request(route.method, _concrete(path),
                                        headers=headers, allow_redirects=False)
            assert resp.status in (401, 303), (route.method, path, resp.status)
            if resp.status == 303:
                assert resp.headers["Location"] == "/pair"
            checked += 1
    assert checked >= 30


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/healthz", "/metrics"))


def _routes(client: TestClient) -> list[tuple[str, str]]:
    return sorted({(route.method, route.resource.canonical)
                   for route in client.app.router.routes()
                   if route.resource is not None and route.method != "HEAD"})


def test_every_route_has_a_role_and_the_table_no_stale_rows(
        client: TestClient) -> None:
    routes = _routes(client)
    unclassified = [key for key in routes
                    if key[1] not in PUBLIC_PATHS and key not in ROUTE_ROLES]
    assert unclassified == [], "add these to daemon/web/authz.py ROUTE_ROLES"
    assert sorted(set(ROUTE_ROLES) - set(routes)) == []


async def _ask(client: TestClient, method: str, path: str, token: str,
               ) -> tuple[int, str, str]:
    """Call a route as a tablet would: bearer for the API, cookie for pages."""
    headers = auth(token) if _is_api(path) else page_headers(token)
    resp = await client.request(method, _concrete(path), headers=headers,
                                allow_redirects=False)
    assert resp.headers.get("Access-Control-Allow-Origin") != "*"
    assert "Content-Security-Policy" in resp.headers
    streaming = resp.content_type == "text/event-stream"
    text = "" if streaming else await resp.text()
    resp.close()
    return resp.status, resp.headers.get("Location", ""), text


async def test_every_route_answers_each_role_as_the_table_says(
        client: TestClient) -> None:
    box = client.app[STALLBOX]
    cashier = await pair(client, "Till", manager=False)
    manager = await pair(client, "Chef")
    checked = 0
    for method, path in _routes(client):
        role = Role.PUBLIC if path in PUBLIC_PATHS else ROUTE_ROLES[(method, path)]
        if role is Role.PUBLIC:
            continue
        status, where, text = await _ask(client, method, path, cashier)
        if role is Role.CASHIER:
            assert status not in (401, 403), (method, path, status, text[:200])
            assert not where.startswith(("/pair", "/elevate")), (method, path)
        elif _is_api(path):
            assert status == 403 and "Manager PIN" in text, (method, path, status)
        elif method == "GET":
            assert (status, where) == (303, "/elevate?next=" + _concrete(path))
        else:
            assert status == 403 and 'name="manager_pin"' in text, (method, path)
        box.lan.tokens[token_hash(manager)].elevated_until = time.monotonic() + 60
        status, where, text = await _ask(client, method, path, manager)
        assert status not in (401, 403), (method, path, status, text[:200])
        assert not where.startswith(("/pair", "/elevate")), (method, path)
        checked += 1
    assert checked >= 70


async def test_pair_then_token_opens_the_api(client: TestClient) -> None:
    token = await pair(client)
    assert len(token) >= 22  # ≥ 128 bits in URL-safe base64
    resp = await client.get("/api/v1/products", headers=auth(token))
    assert resp.status == 200


async def test_pairing_code_is_one_time(client: TestClient) -> None:
    from daemon.web.keys import STALLBOX

    code = await client.app[STALLBOX].issue_pairing_code()
    first = await client.post("/api/v1/pair", json={"code": code, "name": "A"})
    again = await client.post("/api/v1/pair", json={"code": code, "name": "B"})
    assert (first.status, again.status) == (201, 422)


async def test_wrong_codes_are_rate_limited(client: TestClient) -> None:
    statuses = []
    for attempt in range(8):
        resp = await client.post("/api/v1/pair",
                                 json={"code": f"{attempt:06d}", "name": "x"})
        statuses.append(resp.status)
    assert statuses[:5] == [422] * 5
    assert statuses[5:] == [429] * 3
    assert "Retry-After" in resp.headers


async def test_cash_sale_totals_tax_and_change(client: TestClient, token: str) -> None:
    await stock(client, token)
    resp = await client.post("/api/v1/sales", headers=auth(token),
                             json=sale_body([("BROT", 10)], 5000))
    assert resp.status == 201
    sale = await resp.json()
    assert (sale["total_minor"], sale["change_minor"]) == (4500, 500)
    assert sale["taxes"] == [{"code": "B", "label": "7 %", "rate_bp": 700,
                              "net_minor": 4206, "tax_minor": 294,
                              "gross_minor": 4500}]
    assert sale["seq"] > 0


async def test_ten_lines_and_one_line_of_ten_tax_the_same(client: TestClient,
                                                          token: str) -> None:
    await stock(client, token)
    ten = await client.post("/api/v1/sales", headers=auth(token),
                            json=sale_body([("BROT", 1)] * 10, 4500))
    one = await client.post("/api/v1/sales", headers=auth(token),
                            json=sale_body([("BROT", 10)], 4500))
    a, b = await ten.json(), await one.json()
    assert a["total_minor"] == b["total_minor"] == 4500
    assert a["taxes"] == b["taxes"]


async def test_same_client_ref_returns_the_first_sale(client: TestClient,
                                                      token: str) -> None:
    await stock(client, token)
    body = sale_body([("CREME", 2)], 1000, ref="tablet-1-0000001")
    first = await client.post("/api/v1/sales", headers=auth(token), json=body)
    again = await client.post("/api/v1/sales", headers=auth(token), json=body)
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["id"] == (await again.json())["id"]


async def test_concurrent_retries_create_one_sale(client: TestClient,
                                                  token: str) -> None:
    await stock(client, token)
    body = sale_body([("CREME", 1)], 500, ref="double-tap-000001")
    responses = await asyncio.gather(*(client.post(
        "/api/v1/sales", headers=auth(token), json=body) for _ in range(10)))
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    listing = await (await client.get("/api/v1/sales", headers=auth(token))).json()
    assert len(listing["items"]) == 1


async def test_receipt_text_shows_euro_and_accents(client: TestClient,
                                                   token: str) -> None:
    await stock(client, token)
    sale = await (await client.post("/api/v1/sales", headers=auth(token),
                                    json=sale_body([("CREME", 1)], 500))).json()
    resp = await client.get(f"/api/v1/sales/{sale['id']}/receipt",
                            headers=auth(token))
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert "Crème brûlée" in text
    assert "3,80" in text and "1,20" in text
    assert "Testhof Stand" in text


@pytest.mark.parametrize(("body", "field"), [
    ({"client_ref": "abcdefgh", "lines": [], "payment": {"method": "cash",
                                                         "tendered_minor": 1}},
     "lines"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": "2"}],
      "payment": {"method": "cash", "tendered_minor": 1000}}, "lines[0].qty"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": 1.5}],
      "payment": {"method": "cash", "tendered_minor": 1000}}, "lines[0].qty"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": 1}],
      "payment": {"method": "cash", "tendered_minor": 1000}, "discount": 5},
     "discount"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": 1, "price": 1}],
      "payment": {"method": "cash", "tendered_minor": 1000}}, "lines[0].price"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": 1}],
      "payment": {"method": "cash", "tendered_minor": True}},
     "payment.tendered_minor"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": 1}],
      "payment": {"method": "cash", "tendered_minor": 100}},
     "payment.tendered_minor"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "NOPE", "qty": 1}],
      "payment": {"method": "cash", "tendered_minor": 100}}, "lines[0].sku"),
    ({"client_ref": "abcdefgh", "lines": [{"sku": "BROT", "qty": -1}],
      "payment": {"method": "cash", "tendered_minor": 100}}, "lines[0].qty"),
    ([1, 2, 3], "body"),
])
async def test_bad_sale_bodies_get_422_naming_the_field(
        client: TestClient, token: str, body: Any, field: str) -> None:
    await stock(client, token)
    resp = await client.post("/api/v1/sales", headers=auth(token), json=body)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["field"] == field
    assert problem["detail"]
    listing = await (await client.get("/api/v1/sales", headers=auth(token))).json()
    assert listing["items"] == []


async def test_malformed_json_and_wrong_content_type(client: TestClient,
                                                     token: str) -> None:
    for data, ctype in ((b"{not json", "application/json"),
                        (b"\xff\xfe", "application/json"),
                        (b'{"a": 1}', "text/plain")):
        resp = await client.post("/api/v1/sales", data=data,
                                 headers={"Content-Type": ctype, **auth(token)})
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"


async def test_oversized_body_gets_413(client: TestClient, token: str) -> None:
    resp = await client.post("/api/v1/sales", data=io.BytesIO(b"x" * 2**21),
                             headers={"Content-Type": "application/json",
                                      **auth(token)})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_products_search_folds_accents(client: TestClient, token: str) -> None:
    await stock(client, token)
    resp = await client.get("/api/v1/products", params={"q": "creme"},
                            headers=auth(token))
    items = (await resp.json())["items"]
    assert [(i["sku"], i["name"], i["price_minor"]) for i in items] == [
        ("CREME", "Crème brûlée", 380)]
    for hostile in ("%", "_", "'; DROP TABLE products; --", "\\"):
        resp = await client.get("/api/v1/products", params={"q": hostile},
                                headers=auth(token))
        assert resp.status == 200
        assert (await resp.json())["items"] == []


async def test_healthz_is_public_and_reports_seq(client: TestClient) -> None:
    resp = await client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "ok"
    assert isinstance(body["journal_seq"], int)


async def test_openapi_lists_the_contract(client: TestClient, token: str) -> None:
    spec = await (await client.get("/api/v1/openapi.json", headers=auth(token))).json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/pair", "/api/v1/sales", "/api/v1/sales/{id}/receipt",
                 "/api/v1/products", "/api/v1/catalog/import", "/healthz"):
        assert path in spec["paths"]
    sale = spec["paths"]["/api/v1/sales"]["post"]["requestBody"]
    schema = sale["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"client_ref", "lines", "payment"}


async def test_unknown_api_route_is_problem_json(client: TestClient,
                                                 token: str) -> None:
    resp = await client.get("/api/v1/nothing-here", headers=auth(token))
    assert resp.status in (401, 404)
    assert resp.content_type == "application/problem+json"
