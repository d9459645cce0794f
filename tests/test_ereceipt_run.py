"""A whole daemon run with an e-receipt: no address, token, password or key in
its debug log (the process's own stderr, grepped)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import aiohttp
import pytest

from daemon.keys.epoch import key_files
from scripts.daemonproc import DaemonProcess, write_config
from tests.smtphelpers import SmtpServer

pytestmark = pytest.mark.slow
CATALOG = b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"
ADDRESS = "max.mustermann@example.org"
PASSWORD = "smtp-secret-Zq81"
WAIT_S = 20.0


def _forms(secret: bytes) -> list[str]:
    return [secret.hex(), base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("=")]


async def _sell_and_mail(daemon: DaemonProcess, state: Path) -> tuple[str, str]:
    url = daemon.url
    token = await asyncio.to_thread(daemon.stock_and_pair, state, CATALOG,
                                    name="Till")
    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {token}"}
        resp = await session.post(url + "api/v1/sales", headers=auth, json={
            "client_ref": uuid.uuid4().hex, "lines": [{"sku": "TEE", "qty": 1}],
            "payment": {"method": "cash", "tendered_minor": 500}})
        sale_id = (await resp.json())["id"]
        resp = await session.post(url + f"api/v1/sales/{sale_id}/email",
                                  headers=auth, json={"email": ADDRESS,
                                                      "consent": True})
        assert resp.status == 202, await resp.text()
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            resp = await session.get(url + f"api/v1/sales/{sale_id}/email",
                                     headers=auth)
            if (await resp.json())["status"] == "sent":
                return token, sale_id
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)


async def test_a_full_run_with_an_e_receipt_logs_no_secret(tmp_path: Path) -> None:
    smtp = await SmtpServer().start()
    state = tmp_path / "state"
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text(PASSWORD + "\n", encoding="utf-8")
    config = write_config(tmp_path / "stallbox.toml", state, (
        f'[email]\nhost = "127.0.0.1"\nport = {smtp.port}\nstarttls = false\n'
        f'from = "stand@example.org"\nusername = "stand"\n'
        f'password_file = "{secret_file}"\n'))
    daemon = await asyncio.to_thread(
        DaemonProcess, config, launcher=("-m", "daemon.cli", "--log-level", "debug"))
    try:
        token, sale_id = await _sell_and_mail(daemon, state)
        keys = [p.read_bytes() for p in (state / "datakeys").glob("*.key")]
        keys += [p.read_bytes() for p in key_files(state).values()]
    finally:
        assert await asyncio.to_thread(daemon.terminate) == 0
        await smtp.stop()
    log = "".join(daemon.log)
    assert f"e-receipt of sale {sale_id} sent" in log  # the log was captured
    assert len(smtp.received) == 1 and smtp.logins
    assert PASSWORD.encode() in base64.b64decode(smtp.logins[0])
    keys.append((state / "device.key").read_bytes())
    secrets = [ADDRESS, "max.mustermann", PASSWORD, token]
    secrets += [form for key in keys for form in _forms(key)]
    leaked = [s for s in secrets if s in log]
    assert not leaked, f"{len(leaked)} secret(s) in the daemon's log"
