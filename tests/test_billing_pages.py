"""The shift pages (X and Z report with the SVG chart) and the public methodology."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import auth, page_headers
from tests.test_refunds_shifts import chf, post, ref  # noqa: F401
from tests.test_sale_billing import body, cash

HOSTILE = "<script>alert(1)</script>"


def cookie(token: str) -> dict[str, str]:
    return page_headers(token)


async def test_methodology_is_public_and_lists_each_product(
        chf: tuple[TestClient, str]) -> None:  # noqa: F811
    client, _ = chf
    resp = await client.get("/methodology", allow_redirects=False)
    assert resp.status == 200
    page = await resp.text()
    for text in ("Formula", "Uncertainty", "Rounding", "Boundaries", "Datasets",
                 "ADEME", "Licence Ouverte", "US EPA", "Cradle to gate",
                 "No offsets are netted", "Blütenhonig", "Honey", "record 31008",
                 "1.57 kg CO2e per kg", "stall default (no mapping)"):
        assert text in page, text
    assert re.search(r"[0-9a-f]{64}", page)  # the factor table's hash


async def test_close_shift_page_shows_the_z_report_with_svg(
        chf: tuple[TestClient, str]) -> None:  # noqa: F811
    client, token = chf
    await post(chf, "/api/v1/sales", body([("TORTE", 2)], cash(5000)), 201)
    page = await (await client.get("/shifts", headers=cookie(token))).text()
    assert "Open shift (X report)" in page and "<svg" in page
    client_ref = page.split('name="client_ref" value="')[1].split('"')[0]

    resp = await client.post("/shifts/close", headers=cookie(token),
                             data={"client_ref": client_ref, "counted": "129,30",
                                   "float": "100"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    z = await (await client.get(resp.headers["Location"],
                                headers=cookie(token))).text()
    svg = z[z.index("<svg"):z.index("</svg>")]
    assert "Z report" in z and "<rect" in svg and "<script" not in svg
    assert "Variance" in z and "Torte" in z
    assert "29,30" in z  # expected = 100,00 float + 29,30 cash (29,26 rounded)


async def test_close_shift_form_refuses_bad_amounts(
        chf: tuple[TestClient, str]) -> None:  # noqa: F811
    client, token = chf
    await post(chf, "/api/v1/sales", body([("TORTE", 1)], cash(5000)), 201)
    for counted in ("", "abc", "-5", "1,234", "9" * 30):
        resp = await client.post("/shifts/close", headers=cookie(token),
                                 data={"client_ref": "close-abcdefgh",
                                       "counted": counted})
        assert resp.status == 422, counted
    listing = await (await client.get("/api/v1/shifts", headers=auth(token))).json()
    assert listing["items"] == []


async def test_product_names_are_escaped_on_the_new_pages(
        chf: tuple[TestClient, str]) -> None:  # noqa: F811
    client, token = chf
    data = f"sku,name,price\nEVIL,\"{HOSTILE}\",\"1,00\"\n".encode()
    resp = await client.post("/api/v1/catalog/import", data=data,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    await post(chf, "/api/v1/sales", body([("EVIL", 1)], cash(100)), 201)
    pages: list[Any] = [await (await client.get(path, headers=cookie(token))).text()
                        for path in ("/methodology", "/shifts")]
    for page in pages:
        assert HOSTILE not in page and "&lt;script&gt;" in page
