"""E-receipts: consent, the address sealed per day, an SMTP outbox with retries,
and crypto-shredding; mail goes to an SMTP server this test runs on loopback."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.ereceipt import outbox as outbox_module
from daemon.ereceipt.outbox import shred_due
from daemon.ereceipt.web import OUTBOX
from daemon.journal.canonical import parse_canonical
from daemon.journal.verify import verify_journal
from daemon.keys.datakeys import DataKeys, ShreddedError
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import DEMO_CSV, auth, make_config, page_headers, pair
from tests.smtphelpers import SmtpServer

SKU = DEMO_CSV.read_text(encoding="utf-8").splitlines()[1].split(",")[0]
ADDRESS = "kundin.mueller@example.org"
WAIT_S = 20.0


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await SmtpServer().start()
    yield server
    await server.stop()


def _email_config(state_dir: Path, port: int, **extra: Any) -> Any:
    return make_config(state_dir, email={"host": "127.0.0.1", "port": port,
                                         "starttls": False,
                                         "from": "stand@example.org", **extra})


@pytest.fixture
async def till(aiohttp_client: Any, state_dir: Path,
               smtp: SmtpServer) -> tuple[TestClient, str]:
    client = await aiohttp_client(create_app(_email_config(state_dir, smtp.port)))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    return client, token


async def _sell(client: TestClient, token: str) -> str:
    body = {"client_ref": uuid.uuid4().hex, "lines": [{"sku": SKU, "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 100_000}}
    resp = await client.post("/api/v1/sales", json=body, headers=auth(token))
    assert resp.status == 201
    return str((await resp.json())["id"])


async def _ask(client: TestClient, token: str, sale_id: str, body: Any) -> Any:
    return await client.post(f"/api/v1/sales/{sale_id}/email", json=body,
                             headers=auth(token))


async def _status(client: TestClient, token: str, sale_id: str,
                  wanted: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        resp = await client.get(f"/api/v1/sales/{sale_id}/email", headers=auth(token))
        state = await resp.json()
        if state.get("status") == wanted:
            return dict(state)
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.05)


async def _emailed_today(till: tuple[TestClient, str], state_dir: Path
                         ) -> tuple[str, Any, Any, date, Path]:
    """Sell, have the receipt mailed with consent, wait until sent; return the
    sale id, the daemon, its day keys, today and today's key file."""
    client, token = till
    sale_id = await _sell(client, token)
    await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    await _status(client, token, sale_id, "sent")
    today = datetime.now(UTC).date()
    return (sale_id, client.app[STALLBOX],
            client.app[OUTBOX].outbox.keys,  # type: ignore[union-attr]
            today, state_dir / "datakeys" / f"{today.isoformat()}.key")


def _journal_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state_dir.glob("journal.sqlite3*"))


async def test_receipt_goes_out_by_mail_and_no_address_is_kept_in_clear(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path,
        caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    client, token = till
    sale_id = await _sell(client, token)
    resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert resp.status == 202, await resp.text()
    state = await _status(client, token, sale_id, "sent")
    assert state["attempts"] == 1 and not state["address_shredded"]
    [mail] = smtp.received
    message = mail.message()
    assert mail.recipients == [f"<{ADDRESS}>"] and message["To"] == ADDRESS
    assert "stand@example.org" in message["From"]
    receipt = await client.app[STALLBOX].receipt_text(sale_id)
    assert receipt.splitlines()[0] in message.get_content()
    assert sale_id in message.get_content()
    for kept in (_journal_bytes(state_dir), caplog.text.encode()):
        assert ADDRESS.encode() not in kept and b"kundin" not in kept
    again = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert again.status == 409


BAD_BODIES = [
    ({"email": ADDRESS}, "consent"),
    ({"email": ADDRESS, "consent": False}, "consent"),
    ({"email": ADDRESS, "consent": "yes"}, "consent"),
    ({"email": ADDRESS, "consent": 1}, "consent"),
    ({"consent": True}, "email"),
    ({"email": "no-at-sign", "consent": True}, "email"),
    ({"email": "a@b", "consent": True}, "email"),
    ({"email": f"{ADDRESS}\r\nBcc: everyone@example.org", "consent": True}, "email"),
    ({"email": f"{ADDRESS}\nSubject: hi", "consent": True}, "email"),
    ({"email": "x" * 250 + "@example.org", "consent": True}, "email"),
    ({"email": "x" * 65 + "@example.org", "consent": True}, "email"),
    ({"email": "\"quoted\"@example.org", "consent": True}, "email"),
    ({"email": "a@b.de>, <c@d.de", "consent": True}, "email"),
    ({"email": "a@[127.0.0.1]", "consent": True}, "email"),
    ({"email": "a@123.123.123.123", "consent": True}, "email"),
    ({"email": "a@example.123", "consent": True}, "email"),
    ({"email": "\ud800@example.org", "consent": True}, "email"),
    ({"email": ADDRESS, "consent": True, "cc": "x@y.de"}, "cc"),
    ({"email": ["a@b.de"], "consent": True}, "email"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_hostile_requests_are_422_and_nothing_is_journaled(
        till: tuple[TestClient, str], smtp: SmtpServer, body: dict[str, Any],
        field: str) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    resp = await _ask(client, token, sale_id, body)
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["field"] == field
    box = client.app[STALLBOX]
    rows = await box.reader.run(lambda c: c.execute(
        "SELECT COUNT(*) FROM events WHERE kind LIKE 'receipt.email%'").fetchone()[0])
    assert rows == 0 and not smtp.received


async def test_oversized_body_and_unknown_sale(till: tuple[TestClient, str]) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    huge = await client.post(f"/api/v1/sales/{sale_id}/email",
                             data=io.BytesIO(b'{"email": "' + b"a" * (2 << 20)
                                             + b'"}'),
                             headers={"Content-Type": "application/json",
                                      **auth(token)})
    assert huge.status == 413
    missing = await _ask(client, token, "nosuchsale", {"email": ADDRESS,
                                                       "consent": True})
    assert missing.status == 404


async def test_without_email_config_the_request_is_refused(
        client: TestClient, token: str) -> None:
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    sale_id = await _sell(client, token)
    resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert resp.status == 409
    assert "not set up" in (await resp.json())["detail"]


async def test_temporary_failures_are_retried_with_backoff(
        till: tuple[TestClient, str], smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "FIRST_RETRY_S", 0.05)
    smtp.temporary_failures, smtp.drop_connections = 1, 1
    client, token = till
    sale_id = await _sell(client, token)
    assert (await _ask(client, token, sale_id, {"email": ADDRESS,
                                                "consent": True})).status == 202
    state = await _status(client, token, sale_id, "sent")
    assert state["attempts"] == 3 and len(smtp.received) == 1
    box = client.app[STALLBOX]
    reasons = await box.reader.run(lambda c: [
        parse_canonical(bytes(r[0]))["data"]["reason"] for r in c.execute(
            "SELECT body FROM events WHERE kind = 'receipt.email_failed'")])
    assert reasons == ["connection", "temporary"]


async def test_a_refused_address_fails_at_once(
        till: tuple[TestClient, str], smtp: SmtpServer) -> None:
    smtp.refuse_recipients = True
    client, token = till
    sale_id = await _sell(client, token)
    await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    state = await _status(client, token, sale_id, "failed")
    assert state == {"status": "failed", "attempts": 1, "error": "rejected",
                     "address_shredded": False}


async def test_sale_page_form_needs_consent_and_shows_the_state(
        till: tuple[TestClient, str], smtp: SmtpServer) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    headers = page_headers(token)
    page = await client.get(f"/sales/{sale_id}", headers=headers)
    assert 'action="/sales/' in await page.text() and "Receipt by e-mail" in \
        await page.text()
    form = {"csrf": headers["X-CSRF-Token"], "email": ADDRESS}
    refused = await client.post(f"/sales/{sale_id}/email", data=form,
                                headers=headers, allow_redirects=False)
    assert refused.status == 422 and "consent" in await refused.text()
    hostile = await client.post(f"/sales/{sale_id}/email", headers=headers,
                                data={**form, "email": ADDRESS + "\r\nBcc: x@y.de",
                                      "consent": "yes"}, allow_redirects=False)
    assert hostile.status == 422
    done = await client.post(f"/sales/{sale_id}/email", headers=headers,
                             data={**form, "consent": "yes"}, allow_redirects=False)
    assert done.status == 303
    await _status(client, token, sale_id, "sent")
    page = await client.get(f"/sales/{sale_id}", headers=headers)
    text = await page.text()
    assert 'id="email-status"' in text and "Sent." in text and ADDRESS not in text


async def test_shredding_erases_the_day_key_once_it_may_go(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path) -> None:
    client, token = till
    sale_id, box, keys, today, key_file = await _emailed_today(till, state_dir)
    assert key_file.exists()
    assert await shred_due(box, keys, 30, today) == []  # retention not passed
    assert key_file.exists()
    assert await shred_due(box, keys, 0, today) == []  # today's key never goes
    assert key_file.exists()
    tomorrow = today + timedelta(days=1)
    assert await shred_due(box, keys, 0, tomorrow) == [today.isoformat()]
    assert not key_file.exists()
    assert await shred_due(box, keys, 0, tomorrow) == []
    token_text = await box.reader.run(lambda c: [
        parse_canonical(bytes(r[0]))["data"]["token"] for r in c.execute(
            "SELECT body FROM events WHERE kind = 'receipt.email_requested'")])
    with pytest.raises(ShreddedError):
        DataKeys(state_dir).decrypt(token_text[0], sale_id)
    state = await _status(client, token, sale_id, "sent")
    assert state["address_shredded"]
    await client.close()
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    result = verify_journal(state_dir / JOURNAL_FILE, device,
                            observers=replay_observers())
    assert result.ok, result.reason


async def test_no_shredding_before_the_sales_synced(
        aiohttp_client: Any, state_dir: Path, smtp: SmtpServer) -> None:
    config = _email_config(state_dir, smtp.port)
    config = make_config(state_dir, email={"host": "127.0.0.1", "port": smtp.port,
                                           "starttls": False,
                                           "from": "stand@example.org"},
                         sync={"url": "http://127.0.0.1:9/"})
    client = await aiohttp_client(create_app(config))
    token = await pair(client)
    await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                      headers={"Content-Type": "text/csv", **auth(token)})
    sale_id = await _sell(client, token)
    await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    await _status(client, token, sale_id, "sent")
    box, keys = client.app[STALLBOX], client.app[OUTBOX].outbox.keys  # type: ignore
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert await shred_due(box, keys, 0, tomorrow) == []
    assert keys.days()


async def test_an_edited_email_row_is_named_by_verify(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path,
        tmp_path: Path) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    await _status(client, token, sale_id, "sent")
    await client.close()
    src = state_dir / JOURNAL_FILE
    conn = sqlite3.connect(src)
    seq = conn.execute("SELECT updated_seq FROM email_receipts").fetchone()[0]
    conn.execute("UPDATE email_receipts SET status = 'queued'")
    conn.commit()
    conn.close()
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    result = verify_journal(src, device, observers=replay_observers())
    assert result.bad_seq == seq and "email_receipts" in result.reason
