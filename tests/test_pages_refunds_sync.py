"""Sale page refunds, the shift link and the sync page, through their forms (#4)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.errors import InputError
from daemon.web import pages_refunds
from daemon.web.keys import STALLBOX
from tests.conftest import auth
from tests.test_pages_till_options import HOSTILE, post, till  # noqa: F401
from tests.test_sale_billing import body, cash


async def api_sale(client: TestClient, lines: list[Any],
                   payment: dict[str, Any] | None = None) -> str:
    resp = await client.post("/api/v1/sales", headers=auth(client.token),
                             json=body(lines, payment or cash(10_000)))
    assert resp.status == 201, await resp.text()
    sale_id: str = (await resp.json())["id"]
    return sale_id


async def refunds(client: TestClient, sale_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/sales/{sale_id}/refunds",
                            headers=auth(client.token))
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def refund_form(client: TestClient, sale_id: str) -> str:
    text = await (await client.get(f"/sales/{sale_id}")).text()
    match = re.search(r'name="client_ref" value="(refund-[^"]+)"', text)
    assert match, "no refund form on the sale page"
    return match.group(1)


async def test_refund_per_unit_then_everything_left(
        till: TestClient) -> None:  # noqa: F811
    sale_id = await api_sale(till, [("KERZE", 3), ("SEIFE", 1)])
    ref = await refund_form(till, sale_id)
    path, text = await post(till, f"/sales/{sale_id}/refunds", client_ref=ref,
                            scope="units", **{"qty-0": "1"}, reason="Docht kaputt")
    assert path == f"/sales/{sale_id}" and 'id="refund-done"' in text
    assert "1 back · <strong>2 left</strong>" in text and "Docht kaputt" in text
    assert "1 × <bdi>Kerze</bdi>" in text.split('id="refunds"')[1]
    again, _ = await post(till, f"/sales/{sale_id}/refunds", client_ref=ref,
                          scope="units", **{"qty-0": "1"})
    assert again == path and len(await refunds(till, sale_id)) == 1  # idempotent
    ref = await refund_form(till, sale_id)
    _, text = await post(till, f"/sales/{sale_id}/refunds", client_ref=ref,
                         scope="all")
    assert "Everything on this sale has been refunded" in text
    # 3 x 9,99 + 5,50 = 35,47 was taken as 35,45 in cash: that is what goes back.
    assert sum(r["total_minor"] for r in await refunds(till, sale_id)) == 3545


async def test_another_tablet_refunded_first_is_said_plainly(
        till: TestClient) -> None:  # noqa: F811
    sale_id = await api_sale(till, [("KERZE", 2)])
    ref = await refund_form(till, sale_id)
    resp = await till.post(f"/api/v1/sales/{sale_id}/refunds",
                           headers=auth(till.token),
                           json={"client_ref": uuid.uuid4().hex,
                                 "lines": [{"line": 0, "qty": 1}]})
    assert resp.status == 201
    # This page was drawn when both units were left; it asks for both.
    path, text = await post(till, f"/sales/{sale_id}/refunds", 409,
                            client_ref=ref, scope="units", **{"qty-0": "2"})
    assert "refunded a moment ago, perhaps from another till" in text
    assert "nothing was refunded now" in text and "1 back · <strong>1 left" in text
    assert len(await refunds(till, sale_id)) == 1


async def test_two_refunds_at_once_one_wins(till: TestClient) -> None:  # noqa: F811
    sale_id = await api_sale(till, [("KERZE", 1)])
    refs = [await refund_form(till, sale_id) for _ in range(2)]
    answers = await asyncio.gather(*(
        till.post(f"/sales/{sale_id}/refunds", allow_redirects=False,
                  data={"client_ref": ref, "scope": "all"}) for ref in refs))
    assert sorted(r.status for r in answers) == [303, 409]
    assert len(await refunds(till, sale_id)) == 1


@pytest.mark.parametrize(("fields", "words"), [
    ({"qty-0": "abc"}, "whole number"), ({"qty-0": "-1"}, "whole number"),
    ({"qty-0": "99999"}, "whole number"), ({"qty-0": "3"}, "only 2 sold"),
    ({}, "type how many units"), ({"qty-0": "1" * 201}, "whole number"),
    ({"qty-0": "1", "reason": "x" * 201}, "too long"),
    ({"qty-0": "1", "client_ref": "short"}, "reload the sale page"),
])
async def test_bad_refund_input_refunds_nothing(
        till: TestClient, fields: dict[str, str], words: str) -> None:  # noqa: F811
    sale_id = await api_sale(till, [("KERZE", 2)])
    form = {"client_ref": await refund_form(till, sale_id), "scope": "units",
            **fields}
    _, text = await post(till, f"/sales/{sale_id}/refunds", 422, **form)
    assert words in text and 'id="refund-error"' in text
    assert await refunds(till, sale_id) == []


async def test_card_refund_refusal_is_shown_as_it_comes(
        till: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    words = "card refunds need the terminal (coming with #3)"

    async def refuse(*args: Any) -> Any:
        raise InputError(words, field="lines")

    monkeypatch.setattr(pages_refunds, "refund_sale", refuse)
    sale_id = await api_sale(till, [("KERZE", 1)])
    _, text = await post(till, f"/sales/{sale_id}/refunds", 422, scope="all",
                         client_ref=await refund_form(till, sale_id))
    assert words in text


async def test_refund_of_split_sale_and_hostile_text_escaped(
        till: TestClient) -> None:  # noqa: F811
    split = {"method": "split", "tenders": [
        {"method": "voucher", "amount_minor": 100, "ref": "V-9"},
        {"method": "cash", "tendered_minor": 500}]}
    sale_id = await api_sale(till, [("EVIL", 1)], split)
    text = await (await till.get(f"/sales/{sale_id}")).text()
    assert "Voucher" in text and HOSTILE not in text
    _, text = await post(till, f"/sales/{sale_id}/refunds", scope="all",
                         client_ref=await refund_form(till, sale_id),
                         reason=HOSTILE)
    assert HOSTILE not in text and "&lt;script&gt;" in text
    tenders = (await refunds(till, sale_id))[0]["tenders"]
    assert {t["method"] for t in tenders if t["amount_minor"]} == {"voucher", "cash"}


async def test_unknown_sale_refund_is_not_found(till: TestClient) -> None:  # noqa: F811
    resp = await till.post("/sales/nope/refunds", data={"scope": "all"})
    assert resp.status == 404


async def test_header_links_to_shift_and_sync(till: TestClient) -> None:  # noqa: F811
    text = await (await till.get("/till")).text()
    assert 'href="/shifts"' in text and 'href="/sync"' in text


# ---- sync page ------------------------------------------------------------------

class FakeSync:
    """A sync worker stand-in whose status the test chooses."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.retries = 0

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def retry(self) -> asyncio.Future[dict[str, Any]]:
        self.retries += 1
        self.state = {**self.state, "state": "idle", "last_error": ""}
        done = asyncio.get_running_loop().create_future()
        done.set_result(self.state)
        return done


async def test_sync_page_without_sync_set_up(till: TestClient) -> None:  # noqa: F811
    await api_sale(till, [("KERZE", 1)])
    text = await (await till.get("/sync")).text()
    assert "Sync not set up" in text and 'id="sync-now"' not in text
    assert re.search(r'id="sync-backlog">\d+ events', text)
    path, _ = await post(till, "/sync/now")
    assert path == "/sync"


async def test_parked_sync_shows_the_error_and_retries(
        till: TestClient) -> None:  # noqa: F811
    box = till.app[STALLBOX]
    fake = FakeSync({"state": "parked", "acked_seq": 12, "backlog": 40,
                     "bytes_remaining": 5000, "rate_eps": 0, "eta_s": None,
                     "last_success": "2026-05-01T10:00:00Z", "next_attempt": "",
                     "last_error": f"receiver said 422: {HOSTILE}", "rounds": 3})
    box.sync = fake
    try:
        text = await (await till.get("/sync")).text()
        assert "Stopped: needs a person" in text and ">Retry</button>" in text
        assert HOSTILE not in text and "&lt;script&gt;" in text
        assert 'id="sync-backlog">40 events' in text and "journal #12" in text
        path, text = await post(till, "/sync/now")
        assert path == "/sync" and fake.retries == 1 and "Up to date" in text
        assert ">Sync now</button>" in text
    finally:
        box.sync = None


async def test_syncing_page_shows_rate_and_reloads_without_js(
        till: TestClient) -> None:  # noqa: F811
    box = till.app[STALLBOX]
    box.sync = FakeSync({"state": "syncing", "acked_seq": 100, "backlog": 2000,
                         "rate_eps": 812.5, "eta_s": 2.5, "last_error": ""})
    try:
        text = await (await till.get("/sync")).text()
        assert "812.5 events/s" in text and 'http-equiv="refresh"' in text
    finally:
        box.sync = None
