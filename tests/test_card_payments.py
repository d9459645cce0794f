"""Card payments end to end: the daemon's HTTP API, a simulated ZVT terminal on a
real pty, the journal on disk. Every simulator behaviour, through the API."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.runtime import JOURNAL_FILE
from daemon.web.app import create_app
from device.sim.zvt_terminal import ZvtTerminalSim
from device.terminal import zvt
from device.terminal import zvt_apdu as z
from tests.cardhelpers import (
    authorisations,
    card_body,
    event_kinds,
    running_zvt,
    sell_by_card,
    settled,
    shrink_zvt_timeouts,
    stock,
)
from tests.conftest import auth, make_config, pair, use_pages

pytestmark = pytest.mark.timeout(90)
FULL_PAN = "4111111111111111"


@pytest.fixture(autouse=True)
def fast_zvt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the driver's timeouts so silence is noticed within seconds."""
    shrink_zvt_timeouts(monkeypatch)
    monkeypatch.setattr(zvt, "REOPEN_S", 1.0)
    monkeypatch.setattr(zvt, "ABORT_WAIT_S", 5.0)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    with running_zvt(tmp_path) as terminal:
        yield terminal


def terminal_section(port: Path, **extra: Any) -> dict[str, Any]:
    return {"protocol": "zvt", "port": str(port), "keepalive_s": 1,
            "response_timeout_s": 2, **extra}


@pytest.fixture
async def card(aiohttp_client: Any, state_dir: Path,
               sim: ZvtTerminalSim) -> AsyncIterator[TestClient]:
    config = make_config(state_dir, terminal=terminal_section(sim.link_path))
    client = await aiohttp_client(create_app(config))
    yield client


@pytest.fixture
async def token(card: TestClient) -> str:
    token = await pair(card)
    await stock(card, token)
    return token


def journal(state_dir: Path) -> Path:
    return state_dir / JOURNAL_FILE


# ---- outcomes ---------------------------------------------------------------

async def test_approved_card_sale_completes_once_with_slip(
        card: TestClient, token: str, sim: ZvtTerminalSim, state_dir: Path) -> None:
    sale = await sell_by_card(card, token, "card-ok-0001")
    assert sale["status"] == "pending"
    assert sale["payment"]["status"] == "pending"

    done = await settled(card, token, sale["id"])
    assert done["status"] == "completed"
    payment = done["payment"]
    assert (payment["status"], payment["amount_minor"]) == ("approved", 320)
    assert payment["card"]["brand"] == "Visa"
    assert payment["card"]["masked_pan"] == "******1234"
    assert done["payments"][0]["status"] == "approved"
    assert authorisations(sim) == 1
    receipt = await card.get(f"/api/v1/sales/{sale['id']}/receipt",
                             headers=auth(token))
    assert "Zahlung erfolgt" in await receipt.text()
    kinds = event_kinds(journal(state_dir))
    tail = [k for k in kinds if k.startswith(("sale.", "payment."))]
    assert tail == ["sale.pending", "payment.intent_created", "payment.approved",
                    "sale.completed"]


class _WitnessSim(ZvtTerminalSim):
    """A terminal that looks into the journal when the amount arrives."""

    journal_path: Path
    intents_seen: list[int]

    def _dispatch(self, apdu: bytes) -> None:
        if apdu[:2] == z.CMD_AUTHORISATION:
            conn = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True)
            rows = conn.execute("SELECT COUNT(*) FROM payment_intents WHERE"
                                " status = 'pending'").fetchone()[0]
            conn.close()
            self.intents_seen.append(rows)
        super()._dispatch(apdu)


async def test_intent_is_journaled_before_the_terminal_is_asked(
        aiohttp_client: Any, state_dir: Path, tmp_path: Path) -> None:
    sim = _WitnessSim(tmp_path / "ttyWitness")
    sim.journal_path, sim.intents_seen = journal(state_dir), []
    sim.start()
    try:
        config = make_config(state_dir, terminal=terminal_section(sim.link_path))
        client = await aiohttp_client(create_app(config))
        token = await pair(client)
        await stock(client, token)
        sale = await sell_by_card(client, token, "witness-0001")
        await settled(client, token, sale["id"])
    finally:
        sim.stop()
    assert sim.intents_seen == [1]


@pytest.mark.parametrize(("sku", "outcome", "code"), [
    ("REFUSED", "declined", 0x05), ("POOR", "declined", 0x33),
    ("QUIT", "aborted", 0x6C)])
async def test_declined_and_customer_abort_leave_the_sale_pending(
        card: TestClient, token: str, sim: ZvtTerminalSim, sku: str, outcome: str,
        code: int) -> None:
    sale = await sell_by_card(card, token, f"card-{sku}-0001", sku)
    done = await settled(card, token, sale["id"])

    assert done["status"] == "pending"
    assert (done["payment"]["status"], done["payment"]["outcome"]) == \
        ("declined", outcome)
    assert done["payment"]["result"]["result_code"] == code
    assert done["payments"][0]["status"] == "declined"
    assert "nothing was charged" in done["payment"]["next_step"]
    resp = await card.post(f"/api/v1/sales/{sale['id']}/reprint",
                           headers=auth(token))
    assert resp.status == 409, await resp.text()
    assert "pending, not completed" in (await resp.json())["detail"]


async def test_declined_sale_can_be_retried_then_cancelled(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    sale = await sell_by_card(card, token, "card-retry-0001", "REFUSED")
    first = (await settled(card, token, sale["id"]))["payment"]
    resp = await card.post("/api/v1/payments", json={"sale_id": sale["id"]},
                           headers=auth(token))
    assert resp.status == 202, await resp.text()
    second = await resp.json()
    assert (second["attempt"], second["status"]) == (2, "pending")
    assert second["id"] != first["id"]
    await settled(card, token, sale["id"])

    resp = await card.post(f"/api/v1/payments/{second['id']}/cancel-sale",
                           headers=auth(token))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "cancelled"
    assert authorisations(sim) == 2
    # Nobody paid: no paid-looking receipt can be printed for it, pending or
    # cancelled (a reprint is refused before anything is journaled).
    resp = await card.post(f"/api/v1/sales/{sale['id']}/reprint",
                           headers=auth(token))
    assert resp.status == 409, await resp.text()
    assert "cancelled, not completed" in (await resp.json())["detail"]


async def test_retry_refused_while_the_payment_is_unsettled(
        card: TestClient, token: str) -> None:
    sale = await sell_by_card(card, token, "card-noretry-01")
    await settled(card, token, sale["id"])
    resp = await card.post("/api/v1/payments", json={"sale_id": sale["id"]},
                           headers=auth(token))
    assert resp.status == 409
    assert "completed" in (await resp.json())["detail"]


async def test_cashier_cancel_aborts_and_terminal_is_idle_after(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    sim.behaviour.prompt_repeats = 100
    sim.behaviour.step_delay_s = 0.05
    sale = await sell_by_card(card, token, "card-cancel-01")
    intent_id = sale["payment"]["id"]
    for _ in range(500):
        if authorisations(sim):
            break
        await asyncio.sleep(0.02)

    resp = await card.post(f"/api/v1/payments/{intent_id}/cancel",
                           headers=auth(token))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["outcome"] == "aborted"
    assert any(a[:2] == z.CMD_ABORT for a in sim.received)

    sim.behaviour.prompt_repeats = 1
    again = await sell_by_card(card, token, "card-cancel-02")
    payment = (await settled(card, token, again["id"]))["payment"]
    assert payment["status"] == "approved", (payment["outcome"], payment["message"])


async def test_busy_terminal_charges_nothing_and_shows_busy(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    sim.behaviour.busy = True
    sale = await sell_by_card(card, token, "card-busy-0001")
    done = await settled(card, token, sale["id"])
    assert done["payment"]["outcome"] == "aborted"
    assert "busy" in done["payment"]["message"]
    status = await (await card.get("/api/v1/terminal", headers=auth(token))).json()
    assert status["state"] == "busy"


@pytest.mark.parametrize("quirk", [
    {"nak_frames": 2}, {"corrupt_crc_frames": 2}, {"byte_by_byte": True},
    {"coalesce_ack": True}, {"prompt_repeats": 3}, {"print_receipt": False}])
async def test_line_quirks_still_approve_once(
        card: TestClient, token: str, sim: ZvtTerminalSim,
        quirk: dict[str, Any]) -> None:
    await asyncio.sleep(0.2)  # let the first status enquiry register
    for key, value in quirk.items():
        setattr(sim.behaviour, key, value)
    sale = await sell_by_card(card, token, "card-quirk-001")
    done = await settled(card, token, sale["id"])
    assert done["payment"]["status"] == "approved"
    assert authorisations(sim) == 1


async def test_prompts_stream_as_server_sent_events(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    sim.behaviour.step_delay_s = 0.3
    sale = await sell_by_card(card, token, "card-sse-00001")
    resp = await card.get(f"/api/v1/payments/{sale['payment']['id']}/events",
                          headers=auth(token))
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = []
    async for line in resp.content:
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
    prompts = [e["prompt"] for e in events if e["prompt"]]
    assert "PIN eingeben" in prompts
    assert events[-1]["status"] == "approved"


# ---- unknown outcomes -------------------------------------------------------

async def test_link_drop_after_approval_is_resolved_by_the_terminal(
        card: TestClient, token: str, sim: ZvtTerminalSim, state_dir: Path) -> None:
    await asyncio.sleep(0.2)
    sim.behaviour.drop_link_after = "status_info"
    sale = await sell_by_card(card, token, "card-drop-0001")
    first = await settled(card, token, sale["id"])
    assert first["payment"]["status"] in ("unknown", "approved")

    for _ in range(200):
        done = await (await card.get(f"/api/v1/sales/{sale['id']}",
                                     headers=auth(token))).json()
        if done["payment"]["status"] == "approved":
            break
        await asyncio.sleep(0.05)
    assert done["status"] == "completed"
    assert done["payment"]["resolved_by"] == "terminal (last-transaction enquiry)"
    assert authorisations(sim) == 1  # enquired about, never retried
    kinds = event_kinds(journal(state_dir))
    assert kinds.count("sale.completed") == 1
    assert "payment.unknown" in kinds and "payment.resolved" in kinds


async def test_link_drop_before_any_booking_waits_for_a_person(
        card: TestClient, token: str, sim: ZvtTerminalSim, state_dir: Path) -> None:
    done = await settled(card, token, (await sell_by_card(
        card, token, "card-first-001"))["id"])
    assert done["payment"]["status"] == "approved"
    sim.behaviour.drop_link_after = "command"
    sale = await sell_by_card(card, token, "card-drop-0002")
    lost = await settled(card, token, sale["id"])
    assert lost["payment"]["status"] == "unknown"
    await asyncio.sleep(2.5)  # reconnect and enquiry happen meanwhile
    still = await (await card.get(f"/api/v1/sales/{sale['id']}",
                                  headers=auth(token))).json()
    assert still["payment"]["status"] == "unknown"
    unknown = await (await card.get("/api/v1/payments", headers=auth(token))).json()
    assert [p["id"] for p in unknown["unknown"]] == [lost["payment"]["id"]]

    resp = await card.post(f"/api/v1/payments/{lost['payment']['id']}/resolve",
                           json={"outcome": "declined", "by": "Anna",
                                 "note": "no slip printed"}, headers=auth(token))
    assert resp.status == 200, await resp.text()
    resolved = await resp.json()
    assert resolved["outcome"] == "declined"
    assert resolved["resolved_by"].startswith("Anna on Till 1")
    body = _last_event(journal(state_dir), "payment.resolved")
    assert body["by"] == "Anna on Till 1" and body["outcome"] == "declined"


async def test_silent_terminal_times_out_to_unknown_then_person_approves(
        card: TestClient, token: str, sim: ZvtTerminalSim, state_dir: Path) -> None:
    sim.behaviour.silent_after = "prompt"
    sale = await sell_by_card(card, token, "card-silent-01")
    lost = await settled(card, token, sale["id"])
    assert lost["payment"]["status"] == "unknown"
    sim.wake()
    status = await (await card.get("/api/v1/terminal", headers=auth(token))).json()
    assert status["state"] in ("unreachable", "ready")

    resp = await card.post(f"/api/v1/payments/{lost['payment']['id']}/resolve",
                           json={"outcome": "approved", "by": "Ben"},
                           headers=auth(token))
    assert resp.status == 200, await resp.text()
    done = await (await card.get(f"/api/v1/sales/{sale['id']}",
                                 headers=auth(token))).json()
    assert (done["status"], done["payment"]["status"]) == ("completed", "approved")
    assert event_kinds(journal(state_dir)).count("sale.completed") == 1


async def test_resolving_a_settled_payment_is_refused(
        card: TestClient, token: str) -> None:
    sale = await sell_by_card(card, token, "card-settled-1")
    done = await settled(card, token, sale["id"])
    resp = await card.post(f"/api/v1/payments/{done['payment']['id']}/resolve",
                           json={"outcome": "declined", "by": "Eve"},
                           headers=auth(token))
    assert resp.status == 409
    bad = await card.post(f"/api/v1/payments/{done['payment']['id']}/resolve",
                          json={"outcome": "maybe", "by": "Eve"}, headers=auth(token))
    assert (bad.status, (await bad.json())["field"]) == (422, "outcome")


# ---- one attempt ------------------------------------------------------------

async def test_double_submit_from_two_clients_makes_one_attempt(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    other = await pair(card, "Till 2")
    body = card_body("card-double-01")
    first, second = await asyncio.gather(
        card.post("/api/v1/sales", json=body, headers=auth(token)),
        card.post("/api/v1/sales", json=body, headers=auth(other)))
    answers = [await first.json(), await second.json()]
    assert sorted([first.status, second.status]) == [200, 202]
    assert answers[0]["id"] == answers[1]["id"]
    assert answers[0]["payment"]["id"] == answers[1]["payment"]["id"]
    await settled(card, token, answers[0]["id"])
    assert authorisations(sim) == 1


async def test_second_sale_while_the_terminal_works_is_refused(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    sim.behaviour.step_delay_s = 0.3
    sale = await sell_by_card(card, token, "card-first-002")
    resp = await card.post("/api/v1/sales", json=card_body("card-second-02"),
                           headers=auth(token))
    assert resp.status == 409
    assert "busy" in (await resp.json())["detail"]
    await settled(card, token, sale["id"])
    sales = await (await card.get("/api/v1/sales", headers=auth(token))).json()
    assert [s["client_ref"] for s in sales["items"]] == ["card-first-002"]


# ---- devices ----------------------------------------------------------------

async def test_unplugged_adapter_is_reopened_within_seconds(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    await _wait_state(card, token, "ready")
    sim.stop()
    await _wait_state(card, token, "unreachable")
    sale = await sell_by_card(card, token, "card-unplug-01")
    gone = await settled(card, token, sale["id"])
    assert gone["payment"]["outcome"] == "aborted"  # nothing was sent
    sim.start()  # back, under a new pty behind the same by-id link
    await _wait_state(card, token, "ready", within_s=5.0)
    retry = await card.post("/api/v1/payments", json={"sale_id": sale["id"]},
                            headers=auth(token))
    assert retry.status == 202
    done = await settled(card, token, sale["id"])
    assert done["payment"]["status"] == "approved"


async def test_end_of_day_compares_brands_and_journals_differences(
        card: TestClient, token: str, sim: ZvtTerminalSim, state_dir: Path) -> None:
    for ref in ("card-eod-00001", "card-eod-00002"):
        await settled(card, token, (await sell_by_card(card, token, ref))["id"])
    resp = await card.post("/api/v1/terminal/end-of-day", headers=auth(token))
    report = await resp.json()
    assert resp.status == 200, report
    assert report["balanced"] and report["differences"] == []
    assert report["terminal_totals"] == [{"brand": "Visa", "count": 2,
                                          "amount_minor": 640}]

    sim.behaviour.silent_after = "status_info"  # booked on the terminal only
    lost = await settled(card, token, (await sell_by_card(
        card, token, "card-eod-00003"))["id"])
    sim.wake()
    await card.post(f"/api/v1/payments/{lost['payment']['id']}/resolve",
                    json={"outcome": "declined", "by": "Cleo"}, headers=auth(token))
    await _wait_state(card, token, "ready", within_s=10.0)
    resp = await card.post("/api/v1/terminal/end-of-day", headers=auth(token))
    report = await resp.json()
    assert not report["balanced"]
    assert report["differences"][0]["difference_minor"] == 320
    assert "payment.reconciliation" in event_kinds(journal(state_dir))


# ---- privacy and bad input --------------------------------------------------

class _FullPanSim(ZvtTerminalSim):
    """A terminal that sends the whole card number, as a faulty one might."""

    def _book(self, amount: int) -> z.StatusInfo:
        info = super()._book(amount)
        from dataclasses import replace

        info = replace(info, masked_pan=FULL_PAN)
        self.last = info
        return info

    def _receipt(self, info: z.StatusInfo) -> bytes:
        return z.encode_text_block([f"Karte {FULL_PAN}", "Zahlung erfolgt"],
                                   z.RECEIPT_CUSTOMER)


async def test_no_card_number_in_journal_or_logs(
        aiohttp_client: Any, state_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = _FullPanSim(tmp_path / "ttyPan")
    sim.start()
    try:
        config = make_config(state_dir, terminal=terminal_section(sim.link_path))
        client = await aiohttp_client(create_app(config))
        token = await pair(client)
        await stock(client, token)
        sale = await sell_by_card(client, token, "card-pan-00001")
        done = await settled(client, token, sale["id"])
    finally:
        sim.stop()
    assert done["payment"]["card"]["masked_pan"] == "411111******1111"
    assert "Karte 411111******1111" in done["payment"]["terminal_lines"]
    assert _files_with(state_dir, FULL_PAN.encode()) == []
    assert FULL_PAN not in caplog.text


async def test_card_payment_with_an_amount_names_the_field(
        card: TestClient, token: str) -> None:
    body = card_body("card-bad-00001")
    body["payment"]["amount_minor"] = 100
    resp = await card.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 422
    assert (await resp.json())["field"] == "payment.amount_minor"


async def test_no_terminal_configured_says_so(client: TestClient) -> None:
    token = await pair(client)
    await stock(client, token)
    resp = await client.post("/api/v1/sales", json=card_body("card-none-0001"),
                             headers=auth(token))
    assert resp.status == 404
    assert "[terminal]" in (await resp.json())["detail"]
    status = await (await client.get("/api/v1/terminal", headers=auth(token))).json()
    assert status["state"] == "none"


# ---- pages ------------------------------------------------------------------

async def test_card_checkout_pages_without_javascript(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    use_pages(card, token)
    await card.post("/till/cart", data={"action": "add", "sku": "TEE", "q": "",
                                        "category": "", "qty": ""})
    till = await (await card.get("/till")).text()
    assert 'action="/till/card"' in till
    ref = till.split('name="client_ref" value="', 1)[1].split('"', 1)[0]
    sim.behaviour.step_delay_s = 0.3
    resp = await card.post("/till/card", data={"client_ref": ref},
                           allow_redirects=False)
    assert resp.status == 303
    page_url = resp.headers["Location"]
    pending = await (await card.get(page_url)).text()
    assert 'http-equiv="refresh"' in pending and "Cancel payment" in pending
    for _ in range(200):
        text = await (await card.get(page_url)).text()
        if "Paid by card" in text:
            break
        await asyncio.sleep(0.05)
    assert "Paid by card" in text and "New sale" in text
    devices = await (await card.get("/devices")).text()
    assert "Terminal ready" in devices or "Terminal busy" in devices
    assert "Run end-of-day" in devices


async def test_unknown_payment_page_asks_for_the_slip_and_records_who(
        card: TestClient, token: str, sim: ZvtTerminalSim) -> None:
    use_pages(card, token)
    sim.behaviour.drop_link_after = "command"
    sale = await sell_by_card(card, token, "card-page-unk1")
    lost = await settled(card, token, sale["id"])
    url = f"/till/card/{lost['payment']['id']}"
    text = await (await card.get(url)).text()
    assert "Outcome unknown" in text and "Slip says approved" in text
    resp = await card.post(url + "/resolve", data={"outcome": "approved",
                                                   "by": "Dora", "note": ""},
                           allow_redirects=False)
    assert resp.status == 303
    text = await (await card.get(url)).text()
    assert "Paid by card" in text and "Dora on Till 1" in text


# ---- helpers ----------------------------------------------------------------

async def _wait_state(client: TestClient, token: str, state: str,
                      within_s: float = 8.0) -> None:
    for _ in range(int(within_s / 0.05)):
        status = await (await client.get("/api/v1/terminal",
                                         headers=auth(token))).json()
        if status["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"terminal not {state}: {status}")


def _files_with(state_dir: Path, needle: bytes) -> list[Path]:
    return [p for p in state_dir.glob("journal.sqlite3*") if needle in p.read_bytes()]


def _last_event(path: Path, kind: str) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT body FROM events WHERE kind = ? ORDER BY seq DESC"
                           " LIMIT 1", (kind,)).fetchone()
    finally:
        conn.close()
    return dict(json.loads(row[0])["data"])


async def test_card_sale_receipt_carries_a_genuine_qr_excerpt(
        card: TestClient, token: str, state_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sale = await sell_by_card(card, token, "card-qr-0001")
    assert (await settled(card, token, sale["id"]))["status"] == "completed"
    text = await (await card.get(f"/api/v1/sales/{sale['id']}/receipt",
                                 headers=auth(token))).text()
    assert "SB1|" in text
    conn = sqlite3.connect(f"file:{journal(state_dir)}?mode=ro", uri=True)
    try:
        excerpt = json.loads(conn.execute("SELECT receipt FROM sales WHERE id = ?",
                                          (sale["id"],)).fetchone()[0])["excerpt"]
    finally:
        conn.close()
    assert excerpt.startswith("SB1|") and excerpt[:40] in text  # the QR's text
    verdict = await (await card.post("/api/v1/receipts/verify",
                                     json={"receipt": excerpt})).json()
    assert verdict["genuine"], verdict
    await card.close()
    from daemon.cli import main

    state = ["--state", str(state_dir)]
    assert main(["verify", *state]) == 0
    assert "read models match a replay" in capsys.readouterr().out
    assert main(["verify-receipt", excerpt, *state]) == 0
