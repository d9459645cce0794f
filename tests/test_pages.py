"""Staff pages: every page renders, untrusted text is escaped, forms are safe."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.money import Currency
from daemon.pairing import token_hash
from daemon.web.cart import store_for
from daemon.web.keys import STALLBOX
from daemon.web.pages_till import quick_tenders
from tests.conftest import auth, pair, use_pages

SCRIPT = "<script>alert(1)</script>"
QUOTES = "Quote \"double\" and 'single'"
RTL = "Kerze \u202eevil\u202c rtl"
TEMPLATE = "Brot {{7*7}}"
QUOTES_CSV = '"' + QUOTES.replace('"', '""') + '"'
CATALOG = (
    "sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    "BROT,Bauernbrot,\"4,50\",reduced,Brot,,750,no\n"
    "CREME,Crème brûlée,\"3,80\",reduced,Dessert,,120,no\n"
    f"X-SCRIPT,{SCRIPT},\"1,00\",standard,{SCRIPT},,,no\n"
    f"X-QUOTE,{QUOTES_CSV},\"2,00\",standard,Böse,,,no\n"
    f"X-RTL,{RTL},\"3,00\",standard,Böse,,,no\n"
    f"X-TEMPLATE,{TEMPLATE},\"4,00\",standard,Böse,{{{{7*7}}}},,no\n"
).encode()
HOSTILE_SKUS = ("X-SCRIPT", "X-QUOTE", "X-RTL", "X-TEMPLATE")


@pytest.fixture
async def till(client: TestClient, token: str) -> TestClient:
    """A client paired by cookie, as a tablet's browser is, with a stocked stall."""
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    use_pages(client, token)
    return client


async def page(client: TestClient, path: str, status: int = 200) -> str:
    resp = await client.get(path)
    assert resp.status == status, (path, resp.status)
    assert resp.content_type == "text/html"
    return await resp.text()


async def post(client: TestClient, path: str, status: int = 200,
               **fields: str) -> tuple[str, str]:
    """Post a form as the browser does; return (final path, page text)."""
    resp = await client.post(path, data=fields)
    assert resp.status == status, (path, resp.status, await resp.text())
    return resp.url.path, await resp.text()


async def add(client: TestClient, sku: str, times: int = 1) -> str:
    text = ""
    for _ in range(times):
        _, text = await post(client, "/till/cart", action="add", sku=sku)
    return text


def client_ref(text: str) -> str:
    match = re.search(r'name="client_ref" value="([^"]+)"', text)
    assert match, "no checkout form on the page"
    return match.group(1)


async def checkout(client: TestClient, status: int = 200,
                   **fields: str) -> tuple[str, str]:
    text = await page(client, "/till")
    fields.setdefault("client_ref", client_ref(text))
    return await post(client, "/till/checkout", status, **fields)


async def sale_count(client: TestClient, token: str) -> int:
    resp = await client.get("/api/v1/sales", headers=auth(token))
    return len((await resp.json())["items"])


def assert_escaped(text: str) -> None:
    """Hostile names appear as text, never as markup or evaluated templates."""
    assert SCRIPT not in text and "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for needle in ("Quote &#34;double&#34; and &#39;single&#39;", "{{7*7}}"):
        assert needle in text, needle
    # A right-to-left override must not flip the page around it.
    for match in re.finditer("\u202e", text):
        before = text[:match.start()]
        assert before.rfind("<bdi") > before.rfind("</bdi>"), "RTL outside <bdi>"


# ---- every page renders ------------------------------------------------------

async def test_every_page_renders_for_a_paired_client(till: TestClient) -> None:
    await add(till, "BROT")
    path, _ = await checkout(till, quick="exact")
    sale_id = path.rsplit("/", 1)[1]
    for url in ("/till", "/till?q=brot", "/till?category=Brot", "/sales",
                f"/sales/{sale_id}", f"/till/change/{sale_id}", "/printer",
                "/pair"):
        text = await page(till, url)
        assert "<main" in text and "Testhof Stand" in text, url
    resp = await till.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/till")


async def test_pages_send_an_unpaired_browser_to_pairing(client: TestClient) -> None:
    for path in ("/", "/till", "/sales", "/printer", "/till/change/x"):
        resp = await client.get(path, allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/pair"), path
    resp = await client.post("/till/checkout", data={"client_ref": "x" * 10},
                             allow_redirects=False)
    assert resp.status == 303


async def test_pairing_page_sets_the_cookie_and_opens_the_till(
        client: TestClient) -> None:
    code = await client.app[STALLBOX].issue_pairing_code()
    path, text = await post(client, "/pair", code=code, name="Till 2")
    assert path == "/till" and "Tap a product" in text
    _, text = await post(client, "/pair", 422, code="000000", name="Till 3")
    assert 'role="alert"' in text


# ---- untrusted catalog text ---------------------------------------------------

async def test_hostile_names_are_escaped_on_till_and_search(till: TestClient) -> None:
    assert_escaped(await page(till, "/till"))
    text = await page(till, "/till?category=B%C3%B6se")
    assert "{{7*7}}" in text and "Bauernbrot" not in text
    assert "&lt;script&gt;" in await page(till, "/till?q=alert")
    assert_escaped(await page(till, "/till?q=%3Cscript%3E"
                                    "&category=%3Cscript%3Ealert(1)%3C/script%3E")
                   + await page(till, "/till?category=B%C3%B6se"))


async def test_hostile_names_are_escaped_in_cart_sale_and_receipt(
        till: TestClient) -> None:
    for sku in HOSTILE_SKUS:
        text = await add(till, sku)
    cart = text[text.index('id="cart"'):]
    assert_escaped(cart)
    path, change = await checkout(till, tendered="20")
    assert "10,00 €" in change  # 1 + 2 + 3 + 4 from a 20 note
    sale_id = path.rsplit("/", 1)[1]
    detail = await page(till, f"/sales/{sale_id}")
    receipt = detail[detail.index('<pre class="receipt">'):]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in receipt
    assert "<script>" not in receipt and "\u202e" not in receipt
    assert "{{7*7}}" in receipt
    assert_escaped(detail)
    listed = await page(till, "/sales")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed
    assert SCRIPT not in listed


# ---- the cart ---------------------------------------------------------------

async def test_cart_buttons_change_quantities(till: TestClient) -> None:
    await add(till, "BROT", times=2)
    await add(till, "CREME")
    _, text = await post(till, "/till/cart", action="inc", sku="CREME")
    assert "2 × 3,80 €" in text and "2 × 4,50 €" in text
    assert 'id="total">16,60 €' in text
    _, text = await post(till, "/till/cart", action="dec", sku="BROT")
    _, text = await post(till, "/till/cart", action="remove", sku="CREME")
    assert 'id="total">4,50 €' in text and "Crème" not in text.split('id="cart"')[1]
    _, text = await post(till, "/till/cart", action="dec", sku="BROT")
    assert "Tap a product to start a sale" in text


async def test_cart_keeps_the_search_after_a_tap(till: TestClient) -> None:
    resp = await till.post("/till/cart", allow_redirects=False,
                           data={"action": "add", "sku": "BROT", "q": "br ot",
                                 "category": "Brot & Co"})
    assert resp.status == 303
    assert resp.headers["Location"] == "/till?q=br+ot&category=Brot+%26+Co"


async def test_each_tablet_has_its_own_cart(till: TestClient) -> None:
    other = await pair(till, "Till 1")  # same name as the first tablet
    await add(till, "BROT")
    resp = await till.get("/till", headers=auth(other))
    assert "Tap a product to start a sale" in await resp.text()


@pytest.mark.parametrize(("fields", "message"), [
    ({"action": "add", "sku": "NOPE"}, "unknown product: &#39;NOPE&#39;"),
    ({"action": "add", "sku": ""}, "choose a product"),
    ({"action": "set", "sku": "BROT", "qty": "99999999"}, "from 0 to 9999"),
    ({"action": "set", "sku": "BROT", "qty": "-1"}, "from 0 to 9999"),
    ({"action": "set", "sku": "BROT", "qty": "١٢"}, "from 0 to 9999"),
    ({"action": "inc", "sku": "CREME"}, "not in the cart"),
    ({"action": "explode", "sku": "BROT"}, "unknown cart action"),
    ({"action": "add", "sku": "B" * 5000}, "sku is too long"),
])
async def test_bad_cart_input_says_what_is_wrong_and_keeps_the_cart(
        till: TestClient, fields: dict[str, str], message: str) -> None:
    await add(till, "BROT", times=2)
    before = client_ref(await page(till, "/till"))
    _, text = await post(till, "/till/cart", 422, **fields)
    assert message in text and 'role="alert"' in text
    assert "2 × 4,50 €" in text and client_ref(text) == before


async def test_quantity_cannot_grow_past_the_sale_limit(till: TestClient) -> None:
    await add(till, "BROT")
    await post(till, "/till/cart", action="set", sku="BROT", qty="9999")
    _, text = await post(till, "/till/cart", 422, action="inc", sku="BROT")
    assert "at most 9999" in text and "9999 × 4,50 €" in text


# ---- checkout -----------------------------------------------------------------

@pytest.mark.parametrize("typed", ["20", "20,00", "20.00", " 20,0 "])
async def test_cash_checkout_shows_the_change_big(till: TestClient, typed: str) -> None:
    await add(till, "BROT")
    await add(till, "CREME")
    path, text = await checkout(till, tendered=typed)
    assert path.startswith("/till/change/")
    assert 'class="change" id="change">11,70 €' in text
    assert "New sale" in text
    assert "Tap a product to start a sale" in await page(till, "/till")


async def test_quick_buttons_pay_exact_or_a_note(till: TestClient) -> None:
    await add(till, "BROT")
    text = await page(till, "/till")
    assert [v for v in re.findall(r'name="quick" value="([^"]+)"', text)] == [
        "exact", "500", "1000", "2000", "5000"]
    _, text = await checkout(till, quick="1000")
    assert 'id="change">5,50 €' in text
    await add(till, "CREME")
    _, text = await checkout(till, quick="exact")
    assert 'id="change">0,00 €' in text


def test_quick_tenders_are_the_next_notes() -> None:
    eur = Currency.of("EUR")
    assert quick_tenders(1170, eur) == [1500, 2000, 5000, 10000]
    assert quick_tenders(2000, eur) == [5000, 10000]
    assert quick_tenders(1, eur) == [500, 1000, 2000, 5000]


@pytest.mark.parametrize(("fields", "message"), [
    ({"tendered": "abc"}, "not a decimal amount"),
    ({"tendered": "1.999"}, "more than 2 decimals"),
    ({"tendered": "-5"}, "cannot be negative"),
    ({"tendered": ""}, "type the amount the customer gave"),
    ({"tendered": "1"}, "less than the total"),
    ({"tendered": "9" * 40}, "not a decimal amount"),
    ({"tendered": "9" * 300}, "tendered is too long"),
    ({"quick": "12abc"}, "quick amount is not valid"),
])
async def test_bad_tendered_amount_sells_nothing_and_keeps_the_cart(
        till: TestClient, token: str, fields: dict[str, str], message: str) -> None:
    await add(till, "BROT", times=3)
    before = client_ref(await page(till, "/till"))
    _, text = await checkout(till, 422, **fields)
    assert message in text and 'role="alert"' in text
    assert "3 × 4,50 €" in text and client_ref(text) == before
    if len(fields.get("tendered", "")) <= 20:
        assert f'value="{fields.get("tendered", "")}"' in text  # typed text kept
    assert await sale_count(till, token) == 0


async def test_empty_cart_checkout_says_so(till: TestClient, token: str) -> None:
    ref = store_for(till.app[STALLBOX]).cart(token_hash(token)).client_ref
    _, text = await post(till, "/till/checkout", 422, client_ref=ref, quick="exact")
    assert "the cart is empty" in text
    assert await sale_count(till, token) == 0


async def test_double_checkout_makes_one_sale(till: TestClient, token: str) -> None:
    await add(till, "BROT")
    ref = client_ref(await page(till, "/till"))
    first, _ = await post(till, "/till/checkout", client_ref=ref, tendered="5")
    again, text = await post(till, "/till/checkout", client_ref=ref, tendered="5")
    assert first == again and 'id="change">0,50 €' in text
    assert await sale_count(till, token) == 1


async def test_simultaneous_double_tap_makes_one_sale(till: TestClient,
                                                      token: str) -> None:
    await add(till, "CREME", times=2)
    ref = client_ref(await page(till, "/till"))
    taps = [till.post("/till/checkout", data={"client_ref": ref, "quick": "exact"})
            for _ in range(5)]
    paths = {resp.url.path for resp in await asyncio.gather(*taps)}
    assert len(paths) == 1 and await sale_count(till, token) == 1


async def test_resubmission_after_a_restart_finds_the_first_sale(
        till: TestClient, token: str) -> None:
    await add(till, "BROT")
    ref = client_ref(await page(till, "/till"))
    first, _ = await post(till, "/till/checkout", client_ref=ref, quick="exact")
    store_for(till.app[STALLBOX]).clear()  # carts die with the process
    again, _ = await post(till, "/till/checkout", client_ref=ref, quick="exact")
    assert first == again and await sale_count(till, token) == 1


async def test_stale_checkout_form_sells_nothing(till: TestClient, token: str) -> None:
    await add(till, "BROT")
    _, text = await post(till, "/till/checkout", 409, client_ref="till-from-yesterday",
                         quick="exact")
    assert "nothing was sold" in text.replace("\n", " ")
    assert "1 × 4,50 €" in text and await sale_count(till, token) == 0


async def test_a_new_cart_gets_a_new_client_ref(till: TestClient) -> None:
    await add(till, "BROT")
    first = client_ref(await page(till, "/till"))
    await checkout(till, quick="exact")
    await add(till, "BROT")
    assert client_ref(await page(till, "/till")) != first


# ---- cross-site forms --------------------------------------------------------

@pytest.mark.parametrize("header", [
    {"Origin": "http://evil.example"}, {"Origin": "null"},
    {"Referer": "http://evil.example/page"}, {"Origin": "http://127.0.0.1:1"},
])
async def test_cross_site_posts_are_refused(till: TestClient, token: str,
                                            header: dict[str, str]) -> None:
    await add(till, "BROT")
    ref = client_ref(await page(till, "/till"))
    for path, data in (("/till/cart", {"action": "clear"}),
                       ("/till/checkout", {"client_ref": ref, "quick": "exact"})):
        resp = await till.post(path, data=data, headers=header)
        assert resp.status == 403, path
        assert "another page" in await resp.text()
    assert await sale_count(till, token) == 0
    assert "1 × 4,50 €" in await page(till, "/till")


async def test_same_origin_posts_pass(till: TestClient) -> None:
    origin = str(till.make_url("/")).rstrip("/")
    resp = await till.post("/till/cart", data={"action": "add", "sku": "BROT"},
                           headers={"Origin": origin, "Referer": origin + "/till"})
    assert resp.status == 200 and "1 × 4,50 €" in await resp.text()


# ---- sales and receipts -------------------------------------------------------

async def sell_by_api(client: TestClient, token: str, count: int) -> None:
    for n in range(count):
        resp = await client.post("/api/v1/sales", headers=auth(token), json={
            "client_ref": f"api-sale-{n:04d}", "lines": [{"sku": "BROT", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}})
        assert resp.status == 201


async def test_sales_list_pages_newest_first(till: TestClient, token: str) -> None:
    await sell_by_api(till, token, 27)
    text = await page(till, "/sales")
    seqs = [int(s) for s in re.findall(r"#(\d+) ·", text)]
    assert len(seqs) == 25 and seqs == sorted(seqs, reverse=True)
    older = re.search(r'href="(/sales\?before_seq=\d+)" rel="next"', text)
    assert older
    text = await page(till, older.group(1))
    rest = [int(s) for s in re.findall(r"#(\d+) ·", text)]
    assert len(rest) == 2 and max(rest) < min(seqs)
    assert 'rel="next"' not in text
    assert "before_seq must be" in await page(till, "/sales?before_seq=abc", 422)


async def test_sale_detail_shows_receipt_jobs_and_reprints(till: TestClient) -> None:
    await add(till, "CREME")
    path, _ = await checkout(till, tendered="5")
    sale_id = path.rsplit("/", 1)[1]
    text = await page(till, f"/sales/{sale_id}")
    assert "Crème brûlée" in text and "Waiting for the printer" in text
    assert "REPRINT" not in text
    final, text = await post(till, f"/sales/{sale_id}/reprint")
    assert final == f"/sales/{sale_id}"
    assert "Reprint queued" in text and "Reprint · job" in text
    receipt = await till.get(f"/api/v1/sales/{sale_id}/receipt")
    assert "Crème brûlée" in await receipt.text()


async def test_unknown_sale_is_a_not_found_page(till: TestClient) -> None:
    assert "Not found" in await page(till, "/sales/nope", 404)
    assert "Not found" in await page(till, "/till/change/nope", 404)
    resp = await till.post("/sales/nope/reprint")
    assert resp.status == 404


# ---- printer status -------------------------------------------------------------

class FakePrinter:
    """Stands in for the print worker: only its state is read by the pages."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def wake(self) -> None:
        """Print jobs are not worked in page tests."""


async def test_printer_problem_shows_on_every_page(till: TestClient) -> None:
    till.app[STALLBOX].printer = FakePrinter({
        "state": "paper_out", "reason": "paper end sensor <tripped>",
        "action": "Put in a new roll.", "port": "/dev/ttyUSB0", "queued": 3})
    for path in ("/till", "/sales", "/printer"):
        text = await page(till, path)
        assert "badge-bad" in text and "Printer out of paper" in text
    text = await page(till, "/printer")
    assert "paper end sensor &lt;tripped&gt;" in text
    assert "Put in a new roll." in text and "/dev/ttyUSB0" in text
    assert "Selling goes on" in text


@pytest.mark.parametrize(("state", "label"), [
    ({"state": "none"}, "No printer set up"),
    ({"state": "ready"}, "Printer ready"),
    ({"state": "misconfigured", "reason": "link misconfigured (check baud rate "
      "/ parity)"}, "Printer link misconfigured"),
    ({"state": "warming_up", "extra": None}, "Warming up"),
    ({}, "Unknown"),
])
async def test_printer_page_renders_any_state(till: TestClient, state: dict[str, Any],
                                              label: str) -> None:
    till.app[STALLBOX].printer = FakePrinter(state)
    text = await page(till, "/printer")
    assert label in text
    if "reason" in state:
        assert "check baud rate / parity" in text
        assert "baud rate and parity" in text  # what to do, from our words


async def test_no_printer_configured_reads_calmly(till: TestClient) -> None:
    text = await page(till, "/till")
    assert "badge-off" in text and "No printer set up" in text
