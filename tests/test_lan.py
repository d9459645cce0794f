"""The LAN: manager PIN, elevation, revocation, CSRF, limits under a burst, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from daemon.config import Config, ConfigError
from daemon.lan.limits import AttemptLimiter
from daemon.lan.pin import PIN_FILE
from daemon.pairing import token_hash
from daemon.web.app import create_app
from daemon.web.authz import CSRF_HEADER, csrf_token
from daemon.web.keys import STALLBOX
from tests.conftest import DEMO_CSV, REPO, auth, make_config, page_headers, pair

PIN = "246810"
SKU = "DES-CREME-BRULEE"


async def set_pin(client: TestClient, pin: str = PIN) -> None:
    await client.app[STALLBOX].lan.set_pin(pin, "test")


async def tablet_seq(client: TestClient, manager: str, name: str) -> int:
    resp = await client.get("/api/v1/tablets", headers=auth(manager))
    assert resp.status == 200, await resp.text()
    return next(t["seq"] for t in (await resp.json())["items"] if t["name"] == name)


async def one_sale(client: TestClient, token: str) -> None:
    resp = await client.post("/api/v1/sales", headers=auth(token), json={
        "client_ref": uuid.uuid4().hex, "lines": [{"sku": SKU, "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 500}})
    assert resp.status == 201, await resp.text()


async def stock(client: TestClient, manager: str) -> None:
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(manager)})
    assert resp.status == 200, await resp.text()


async def close_shift(client: TestClient, token: str) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/shifts/close", headers=auth(token), json={
        "client_ref": uuid.uuid4().hex, "counted_cash_minor": 0})


async def test_pin_elevates_the_api_for_a_while(client: TestClient) -> None:
    cashier = await pair(client, "Till 1", manager=False)
    await set_pin(client)
    assert (await client.get("/api/v1/tablets", headers=auth(cashier))).status == 403
    wrong = await client.post("/api/v1/elevate", json={"pin": "135790"},
                              headers=auth(cashier))
    assert (wrong.status, (await wrong.json())["field"]) == (422, "pin")
    right = await client.post("/api/v1/elevate", json={"pin": PIN},
                              headers=auth(cashier))
    assert right.status == 200 and (await right.json())["expires_in_s"] == 300
    assert (await client.get("/api/v1/tablets", headers=auth(cashier))).status == 200
    session = client.app[STALLBOX].lan.tokens[token_hash(cashier)]
    session.elevated_until -= 301  # five minutes later
    assert (await client.get("/api/v1/tablets", headers=auth(cashier))).status == 403
    await client.post("/api/v1/elevate", json={"pin": PIN}, headers=auth(cashier))
    end = await client.delete("/api/v1/elevate", headers=auth(cashier))
    assert end.status == 204
    assert (await client.get("/api/v1/tablets", headers=auth(cashier))).status == 403


async def test_no_pin_set_says_how_to_set_one(client: TestClient) -> None:
    cashier = await pair(client, manager=False)
    resp = await client.post("/api/v1/elevate", json={"pin": PIN},
                             headers=auth(cashier))
    assert resp.status == 409
    assert "stallbox manager-pin" in (await resp.json())["detail"]


async def test_pin_is_stored_as_a_salted_scrypt_hash_only(
        client: TestClient, config: Config) -> None:
    await pair(client)
    await set_pin(client)
    path = config.state_dir / PIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["scheme"] == "scrypt" and stored["n"] >= 2**14
    assert PIN not in path.read_text()
    box = client.app[STALLBOX]
    events = await box.reader.run(lambda c: c.execute(
        "SELECT body FROM events WHERE kind = 'manager.pin_set'").fetchall())
    assert len(events) == 1 and stored["hash"].encode() not in events[0][0]
    with pytest.raises(Exception, match="6 to 12 digits"):
        await box.lan.set_pin("1234", "test")


async def test_revoked_token_gets_401_on_the_next_request(
        client: TestClient, aiohttp_client: Any, config: Config) -> None:
    manager = await pair(client, "Chef")
    tablet = await pair(client, "Till 2", manager=False)
    assert (await client.get("/api/v1/products", headers=auth(tablet))).status == 200
    seq = await tablet_seq(client, manager, "Till 2")
    resp = await client.post(f"/api/v1/tablets/{seq}/revoke", headers=auth(manager))
    assert (resp.status, (await resp.json())["state"]) == (200, "revoked")
    assert (await client.get("/api/v1/products", headers=auth(tablet))).status == 401
    page = await client.get("/till", headers=page_headers(tablet),
                            allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/pair")
    await client.close()
    again = await aiohttp_client(create_app(config))  # a restart remembers it
    assert (await again.get("/api/v1/products", headers=auth(tablet))).status == 401
    assert (await again.get("/api/v1/products", headers=auth(manager))).status == 200


async def test_revoke_from_the_tablets_page(client: TestClient) -> None:
    manager = await pair(client, "Chef")
    tablet = await pair(client, "Till 2", manager=False)
    seq = await tablet_seq(client, manager, "Till 2")
    text = await (await client.get("/tablets", headers=page_headers(manager))).text()
    assert f'action="/tablets/{seq}/revoke"' in text and "Till 2" in text
    resp = await client.post(f"/tablets/{seq}/revoke", headers=page_headers(manager),
                             data={"csrf": csrf_token(manager)}, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/tablets")
    assert (await client.get("/api/v1/sales", headers=auth(tablet))).status == 401
    code_page = await client.post("/tablets/code", headers=page_headers(manager))
    code = re.search(r"<strong>(\d{6})</strong>", await code_page.text())
    assert code is not None
    paired = await client.post("/api/v1/pair", json={"code": code[1], "name": "New"})
    assert paired.status == 201


async def test_shift_close_ends_the_other_tablets_tokens(client: TestClient) -> None:
    manager = await pair(client, "Chef")
    tablet = await pair(client, "Till 2", manager=False)
    await stock(client, manager)
    await one_sale(client, tablet)
    assert (await close_shift(client, manager)).status == 201
    assert (await client.get("/api/v1/products", headers=auth(tablet))).status == 401
    assert (await client.get("/api/v1/shifts", headers=auth(manager))).status == 200
    listed = await (await client.get("/api/v1/tablets", headers=auth(manager))).json()
    states = {t["name"]: t["state"] for t in listed["items"]}
    assert states == {"Chef": "active", "Till 2": "expired"}


async def test_tokens_outlive_the_close_when_so_configured(
        aiohttp_client: Any, state_dir: Path) -> None:
    config = make_config(state_dir, pairing={"expire_at_shift_close": False})
    client = await aiohttp_client(create_app(config))
    manager = await pair(client, "Chef")
    tablet = await pair(client, "Till 2", manager=False)
    await stock(client, manager)
    await one_sale(client, tablet)
    assert (await close_shift(client, manager)).status == 201
    assert (await client.get("/api/v1/products", headers=auth(tablet))).status == 200


async def test_token_expires_after_its_ttl(client: TestClient) -> None:
    tablet = await pair(client, manager=False)
    session = client.app[STALLBOX].lan.tokens[token_hash(tablet)]
    assert session.expires_monotonic - time.monotonic() > 23 * 3600
    session.expires_monotonic = 0.0  # a day later
    assert (await client.get("/api/v1/products", headers=auth(tablet))).status == 401


async def test_form_without_csrf_token_gets_403(client: TestClient) -> None:
    token = await pair(client)
    cookie = {"Cookie": f"stallbox_token={token}"}
    for data in ({"action": "add", "sku": SKU},
                 {"action": "add", "sku": SKU, "csrf": "0" * 32},
                 {"action": "add", "sku": SKU, "csrf": csrf_token("other")}):
        resp = await client.post("/till/cart", data=data, headers=cookie)
        assert resp.status == 403, data
        assert resp.content_type == "text/html"
        assert "out of date" in await resp.text()
    form = {"action": "add", "sku": "x", "csrf": csrf_token(token)}
    ok = await client.post("/till/cart", headers=cookie, allow_redirects=False,
                           data=form)
    assert ok.status != 403
    api = await client.post("/api/v1/sales", headers=cookie, json={})
    assert api.status == 403 and api.content_type == "application/problem+json"
    bearer = await client.post("/api/v1/sales", headers=auth(token), json={})
    assert bearer.status == 422  # a header token cannot be sent cross-site


async def test_public_forms_need_no_csrf_token(client: TestClient) -> None:
    resp = await client.post("/pair", data={"code": "000000", "name": "x"})
    assert resp.status == 422
    resp = await client.post("/verify", data={"receipt": "nonsense"})
    assert resp.status in (200, 422)


async def test_every_post_form_on_every_page_carries_the_token(
        client: TestClient) -> None:
    manager = await pair(client)
    await stock(client, manager)
    await one_sale(client, manager)
    sale = (await (await client.get("/api/v1/sales", headers=auth(manager))).json())
    pages = ["/till", "/sales", f"/sales/{sale['items'][0]['id']}", "/shifts",
             "/devices", "/sync", "/printer", "/clock", "/tablets", "/display/manage",
             "/elevate"]
    expected = csrf_token(manager)
    checked = 0
    for path in pages:
        resp = await client.get(path, headers=page_headers(manager))
        assert resp.status == 200, path
        for form in re.findall(r"<form\b[^>]*>.*?</form>", await resp.text(), re.S):
            if 'method="post"' not in form:
                continue
            field = f'name="csrf" value="{expected}"'
            assert field in form or f"?csrf={expected}" in form, (path, form[:120])
            checked += 1
    assert checked >= 8


async def test_pin_page_posts_the_form_again(client: TestClient) -> None:
    cashier = await pair(client, manager=False)
    await set_pin(client)
    headers = page_headers(cashier)
    resp = await client.get("/tablets", headers=headers, allow_redirects=False)
    assert resp.headers["Location"] == "/elevate?next=/tablets"
    form = {"csrf": csrf_token(cashier), "client_ref": "close-0000001",
            "counted": "0", "float": ""}
    asked = await client.post("/shifts/close", data=form, headers=headers)
    text = await asked.text()
    assert asked.status == 403 and 'name="manager_pin"' in text
    assert 'action="/shifts/close"' in text and 'value="close-0000001"' in text
    wrong = await client.post("/shifts/close", headers=headers,
                              data={**form, "manager_pin": "111111"})
    assert wrong.status == 422 and "wrong manager PIN" in await wrong.text()
    done = await client.post("/shifts/close", headers=headers,
                             data={**form, "manager_pin": PIN})
    assert done.status == 409  # the PIN was right; nothing was sold to close
    assert "Manager PIN" not in await done.text()
    next_page = await client.get("/tablets", headers=headers)
    assert next_page.status == 200


async def test_elevate_page_returns_only_to_local_pages(client: TestClient) -> None:
    cashier = await pair(client, manager=False)
    await set_pin(client)
    for target, landing in (("/tablets", "/tablets"), ("//evil.example/", "/till"),
                            ("https://evil.example/x", "/till")):
        resp = await client.post("/elevate", headers=page_headers(cashier),
                                 data={"manager_pin": PIN, "next": target},
                                 allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, landing)


async def test_wrong_pin_burst_holds_per_tablet_and_overall(
        client: TestClient) -> None:
    await set_pin(client)
    tablets = [await pair(client, f"T{i}", manager=False) for i in range(8)]
    burst = [client.post("/api/v1/elevate", json={"pin": "999999"},
                         headers=auth(token)) for token in tablets for _ in range(6)]
    statuses = [resp.status for resp in await asyncio.gather(*burst)]
    assert statuses.count(422) == 30  # the global cap, never more guesses
    assert statuses.count(429) == len(burst) - 30
    late = await pair(client, "Late", manager=False)
    right = await client.post("/api/v1/elevate", json={"pin": PIN}, headers=auth(late))
    assert right.status == 429 and "Retry-After" in right.headers


async def test_wrong_code_burst_holds(client: TestClient) -> None:
    code = await client.app[STALLBOX].issue_pairing_code()
    burst = [client.post("/api/v1/pair", json={"code": f"{i:06d}", "name": "x"})
             for i in range(40) if f"{i:06d}" != code]
    statuses = [resp.status for resp in await asyncio.gather(*burst)]
    assert statuses.count(422) == 5 and statuses.count(429) == len(burst) - 5
    late = await client.post("/api/v1/pair", json={"code": code, "name": "y"})
    assert late.status == 429


def test_limiter_counts_a_right_guess_back_and_caps_everyone() -> None:
    limiter = AttemptLimiter("tries", per_client=2, overall=3)
    stamp = limiter.begin("a")
    limiter.succeeded("a", stamp)
    for client in ("a", "a", "b"):
        limiter.begin(client)
    with pytest.raises(Exception, match="too many wrong tries"):
        limiter.begin("c")


async def test_headers_carry_csp_and_no_cors_wildcard(client: TestClient) -> None:
    token = await pair(client)
    for path in ("/pair", "/till", "/static/app.css", "/api/v1/products", "/healthz",
                 "/nope"):
        resp = await client.get(path, headers={**page_headers(token),
                                               "Origin": "http://evil.example"})
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in resp.headers
    preflight = await client.options("/api/v1/sales", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_no_template_has_inline_script_or_handlers() -> None:
    templates = REPO / "daemon" / "web" / "templates"
    for path in templates.glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"<style|\bstyle=|\son[a-z]+=", text), path.name


async def test_pairing_cookie_flags(client: TestClient) -> None:
    code = await client.app[STALLBOX].issue_pairing_code()
    resp = await client.post("/pair", data={"code": code, "name": "T"},
                             allow_redirects=False)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never return
    assert "Max-Age=86400" in cookie


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stallbox.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_the_installers_certificate(tmp_path: Path,
                                                   state_dir: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = make_config(state_dir, http={"tls_cert": str(cert), "tls_key": str(key)})
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=config.tls.context())
    await site.start()
    port = runner.addresses[0][1]
    trust = ssl.create_default_context(cafile=str(cert))
    box = runner.app[STALLBOX]
    try:
        async with aiohttp.ClientSession() as session:
            code = await box.issue_pairing_code()
            resp = await session.post(f"https://127.0.0.1:{port}/pair", ssl=trust,
                                      data={"code": code, "name": "T"},
                                      allow_redirects=False)
            assert "Secure" in resp.headers["Set-Cookie"]
            assert "max-age" in resp.headers["Strict-Transport-Security"]
    finally:
        await runner.cleanup()


def test_tls_needs_both_files(state_dir: Path) -> None:
    with pytest.raises(ConfigError, match="http.tls_key"):
        make_config(state_dir, http={"tls_cert": "cert.pem"})
    with pytest.raises(ConfigError, match="http.tls_cert"):
        make_config(state_dir, http={"tls_cert": "nope.pem",
                                     "tls_key": "nope.key"}).tls.context()


def test_manager_pin_and_tablets_cli_offline(state_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "daemon.cli", "manager-pin", "--pin-stdin",
           "--state", str(state_dir)]
    bad = subprocess.run(run, input="12ab\n", capture_output=True, text=True,
                         env=env, timeout=60)
    assert bad.returncode == 1 and "6 to 12 digits" in bad.stderr
    good = subprocess.run(run, input=PIN + "\n", capture_output=True, text=True,
                          env=env, timeout=60)
    assert good.returncode == 0, good.stderr
    assert (state_dir / PIN_FILE).exists() and PIN not in good.stdout + good.stderr
    listed = subprocess.run([sys.executable, "-m", "daemon.cli", "tablets", "--state",
                             str(state_dir)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr


async def test_manager_pin_through_the_control_socket(client: TestClient) -> None:
    from daemon.server import control_ops

    ops = control_ops(client.app[STALLBOX])
    assert await ops["manager_pin"]({"pin": PIN}) == {}
    assert client.app[STALLBOX].lan.pin is not None
    token = await pair(client, "X", manager=False)
    reply = await ops["tablets"]({"revoke": await _seq_of(client, "X")})
    assert {t["name"]: t["state"] for t in reply["items"]}["X"] == "revoked"
    assert (await client.get("/api/v1/sales", headers=auth(token))).status == 401


async def _seq_of(client: TestClient, name: str) -> int:
    rows = await client.app[STALLBOX].lan.tablets(client.app[STALLBOX].reader)
    return next(t["seq"] for t in rows if t["name"] == name)


async def test_csrf_header_works_for_scripts(client: TestClient) -> None:
    token = await pair(client)
    resp = await client.post("/api/v1/sales", json={}, headers={
        "Cookie": f"stallbox_token={token}", CSRF_HEADER: csrf_token(token)})
    assert resp.status == 422
