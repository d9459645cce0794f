"""E-receipts when things go wrong: one bad mail among good ones, today's key
and shredding once, a corrected address after a failure, ambiguous forms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.ereceipt import outbox as outbox_module
from daemon.ereceipt import store
from daemon.ereceipt.outbox import shred_due
from daemon.journal.verify import verify_journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from tests.conftest import DEMO_CSV, auth, page_headers, pair
from tests.smtphelpers import SmtpServer
from tests.test_ereceipt import (
    ADDRESS,
    _ask,
    _email_config,
    _emailed_today,
    _sell,
    _status,
)


async def _kinds(client: TestClient, kind: str) -> int:
    box = client.app[STALLBOX]
    return int(await box.reader.run(lambda c: c.execute(
        "SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]))


def _verifies(state_dir: Path) -> None:
    device = DeviceIdentity.load_or_create(state_dir).public_bytes
    result = verify_journal(state_dir / JOURNAL_FILE, device,
                            observers=replay_observers())
    assert result.ok, result.reason


async def _till(aiohttp_client: Any, state_dir: Path, port: int,
                **email: Any) -> tuple[TestClient, str]:
    client = await aiohttp_client(create_app(_email_config(state_dir, port, **email)))
    token = await pair(client)
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    return client, token


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await SmtpServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def till(aiohttp_client: Any, state_dir: Path,
               smtp: SmtpServer) -> tuple[TestClient, str]:
    return await _till(aiohttp_client, state_dir, smtp.port)


async def test_a_mail_that_cannot_be_built_fails_and_the_next_goes_out(
        till: tuple[TestClient, str], smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client, token = till
    bad, good = await _sell(client, token), await _sell(client, token)
    real = outbox_module.build_message

    def build(settings: Any, address: str, stall: str, sale_id: str,
              receipt: str) -> Any:
        if sale_id == bad:
            raise ValueError("Header values may not contain linefeed")
        return real(settings, address, stall, sale_id, receipt)

    monkeypatch.setattr(outbox_module, "build_message", build)
    for sale_id in (bad, good):  # the bad one is first in the queue
        resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
        assert resp.status == 202
    await _status(client, token, good, "sent")
    state = await _status(client, token, bad, "queued")
    assert state["attempts"] >= 1 and state["error"] == "config", state
    assert len(smtp.received) == 1


@pytest.mark.parametrize("password", [b"\xff\xfe not utf-8\n", None])
async def test_an_unreadable_password_file_counts_attempts_for_every_mail(
        aiohttp_client: Any, state_dir: Path, smtp: SmtpServer,
        password: bytes | None) -> None:
    """The file was fine at start and went bad (or away) while running."""
    secret = state_dir.parent / "smtp-password"
    secret.write_bytes(b"geheim\n")
    client, token = await _till(aiohttp_client, state_dir, smtp.port,
                                username="stand", password_file=str(secret))
    if password is None:
        secret.unlink()
    else:
        secret.write_bytes(password)
    sales = [await _sell(client, token) for _ in range(2)]
    for sale_id in sales:
        await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    for sale_id in sales:
        deadline = 50
        while (state := await client.get(f"/api/v1/sales/{sale_id}/email",
                                         headers=auth(token))) and deadline:
            body = await state.json()
            if body["attempts"]:
                break
            deadline -= 1
            await asyncio.sleep(0.1)
        assert body["attempts"] == 1 and body["error"] == "config", body
    assert smtp.received == []


async def test_todays_key_is_never_shredded_and_a_day_only_once(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path) -> None:
    client, token = till
    sale_id, box, keys, today, key_file = await _emailed_today(till, state_dir)
    for retention in (0, 1, 30):
        assert await shred_due(box, keys, retention, today) == []
    assert key_file.exists() and await _kinds(client, store.SHREDDED) == 0
    tomorrow = today + timedelta(days=1)
    assert await shred_due(box, keys, 0, tomorrow) == [today.isoformat()]
    # a request refused (asked already) makes no key file
    again = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert again.status == 409 and not key_file.exists()
    key_file.write_bytes(b"k" * 32)  # a key file back for a day already shredded
    assert await shred_due(box, keys, 0, tomorrow) == [today.isoformat()]
    assert not key_file.exists() and await _kinds(client, store.SHREDDED) == 1
    await box.journal.transact(lambda tx: store.record_shred(tx, today.isoformat()))
    assert await _kinds(client, store.SHREDDED) == 1
    await client.close()
    _verifies(state_dir)


async def test_a_request_on_a_shredded_day_makes_no_key_file(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    box = client.app[STALLBOX]
    today = datetime.now(UTC).date().isoformat()
    await box.journal.transact(lambda tx: store.record_shred(tx, today))
    resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert resp.status == 409 and "shredded" in await resp.text()
    assert not (state_dir / "datakeys" / f"{today}.key").exists()


async def test_a_failed_address_can_be_corrected_and_is_journaled(
        till: tuple[TestClient, str], smtp: SmtpServer, state_dir: Path) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    smtp.refuse_recipients = True
    await _ask(client, token, sale_id, {"email": "tippfehler@example.org",
                                        "consent": True})
    await _status(client, token, sale_id, "failed")
    smtp.refuse_recipients = False
    headers = page_headers(token)
    page = await (await client.get(f"/sales/{sale_id}", headers=headers)).text()
    assert "corrected address" in page and 'action="/sales/' in page
    resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert resp.status == 202 and (await resp.json())["replaced"] is True
    state = await _status(client, token, sale_id, "sent")
    assert state["attempts"] == 1 and state["error"] == ""
    assert [m.recipients for m in smtp.received] == [[f"<{ADDRESS}>"]]
    assert await _kinds(client, store.REQUESTED) == 2
    again = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert again.status == 409  # sent: nothing to correct
    await client.close()
    _verifies(state_dir)


async def test_a_queued_mail_cannot_be_replaced(
        till: tuple[TestClient, str], smtp: SmtpServer) -> None:
    smtp.temporary_failures = 100
    client, token = till
    sale_id = await _sell(client, token)
    await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    resp = await _ask(client, token, sale_id, {"email": ADDRESS, "consent": True})
    assert resp.status == 409


@pytest.mark.parametrize("fields", [
    [("consent", "yes"), ("consent", "no")],
    [("consent", "no"), ("consent", "yes")],
    [("consent", "yes"), ("consent", "yes")],
    [("consent", "yes"), ("email", "other@example.org")],
])
async def test_a_form_field_given_twice_is_refused(
        till: tuple[TestClient, str], smtp: SmtpServer,
        fields: list[tuple[str, str]]) -> None:
    client, token = till
    sale_id = await _sell(client, token)
    headers = page_headers(token)
    form = [("csrf", headers["X-CSRF-Token"]), ("email", ADDRESS), *fields]
    resp = await client.post(f"/sales/{sale_id}/email", data=form, headers=headers,
                             allow_redirects=False)
    assert resp.status == 422 and "once" in await resp.text()
    assert await _kinds(client, store.REQUESTED) == 0
