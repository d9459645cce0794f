"""Hostile JSON input: lone surrogates, control codes, deep nesting, doc gaps."""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from daemon.errors import InputError
from daemon.live.events import parse_body
from daemon.web.schema import Obj, Str
from daemon.web.trust import VERIFY_BODY
from sync import protocol
from sync.receiver import verify
from sync.receiver.schema import Invalid
from tests.conftest import auth
from tests.synchelpers import Receiver, running_receiver

DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB, far past the recursion limit


def _sale(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_ref": uuid.uuid4().hex,
        "lines": [{"sku": "DES-CREME-BRULEE", "qty": 1}],
        "payment": {"method": "cash", "tendered_minor": 1000}}
    body.update(changes)
    return body


async def _post_raw(client: TestClient, token: str, path: str,
                    raw: bytes) -> tuple[int, dict[str, Any]]:
    resp = await client.post(path, data=raw, headers={
        "Content-Type": "application/json", **auth(token)})
    return resp.status, await resp.json(content_type=None)


async def _body_refused_and_nothing_sold(client: TestClient, token: str,
                                         raw: bytes, detail: str) -> None:
    """A sale whose raw body is refused as a whole: 422 naming the body, with
    detail in its text, and the sales list still empty."""
    status, problem = await _post_raw(client, token, "/api/v1/sales", raw)
    assert status == 422 and problem["field"] == "body", problem
    assert detail in problem["detail"]
    resp = await client.get("/api/v1/sales", headers=auth(token))
    assert (await resp.json())["items"] == []


# ---- 1: strings must be valid, printable Unicode -------------------------------

@pytest.mark.parametrize(("body", "field"), [
    (_sale(client_ref="bad-\ud800-0016"), "client_ref"),
    (_sale(lines=[{"sku": "\ud800", "qty": 1}]), "lines[0].sku"),
    (_sale(client_ref="nul\x00-in-the-ref"), "client_ref"),
    (_sale(client_ref="esc\x1b-in-the-ref"), "client_ref"),
    (_sale(lines=[{"sku": "BROT\n", "qty": 1}]), "lines[0].sku"),
    (_sale(discount={"amount_minor": 10, "label": "\ud83dx"}), "discount.label"),
])
async def test_bad_strings_in_a_sale_are_422_naming_the_field(
        stocked: TestClient, token: str, body: dict[str, Any], field: str) -> None:
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would
    status, problem = await _post_raw(stocked, token, "/api/v1/sales",
                                      json.dumps(body).encode())
    assert (status, problem["field"]) == (422, field), problem


async def test_a_valid_surrogate_pair_is_a_character_not_an_error(
        stocked: TestClient, token: str) -> None:
    body = _sale(client_ref="emoji-\ud83d\ude00-ref")  # escaped pair = U+1F600
    status, problem = await _post_raw(stocked, token, "/api/v1/sales",
                                      json.dumps(body).encode())
    assert status == 201, problem


async def test_lone_surrogate_in_pairing_name_is_422(client: TestClient) -> None:
    resp = await client.post("/api/v1/pair", data=json.dumps(
        {"code": "123456", "name": "Till \udfff"}),
        headers={"Content-Type": "application/json"})
    assert (resp.status, (await resp.json())["field"]) == (422, "name")


def test_str_spec_checks_unicode_and_control_codes() -> None:
    spec = Obj({"id": Str(1, 64)})
    with pytest.raises(InputError, match="not valid Unicode"):
        spec.check({"id": "a\udc80b"})
    with pytest.raises(InputError, match="control character U\\+0000"):
        spec.check({"id": "a\x00b"})
    with pytest.raises(InputError, match="control character U\\+009B"):
        spec.check({"id": "a\x9bb"})
    assert spec.check({"id": "Grüße ✓ שלום"}) == {"id": "Grüße ✓ שלום"}
    # free text (a pasted receipt) keeps its lines but not a lone surrogate
    assert VERIFY_BODY.check({"receipt": "line 1\nline 2"})["receipt"]
    with pytest.raises(InputError, match="not valid Unicode"):
        VERIFY_BODY.check({"receipt": "line\ud800"})


def test_live_event_specs_refuse_lone_surrogates() -> None:
    raw = json.dumps({"type": "stream.started", "id": "e1", "stream_id": "s1",
                      "title": "Live \ud800"}).encode()
    with pytest.raises(InputError, match="title is not valid Unicode"):
        parse_body(raw)


# ---- 2: deep nesting is a 422, not a RecursionError ----------------------------

async def test_deeply_nested_body_is_422(client: TestClient, token: str) -> None:
    status, problem = await _post_raw(client, token, "/api/v1/sales", DEEP)
    assert status == 422
    assert (problem["field"], problem["detail"]) == ("body",
                                                     "body nested too deeply")


def test_deeply_nested_live_event_is_input_error() -> None:
    with pytest.raises(InputError, match="nested too deeply"):
        parse_body(DEEP)


def test_receiver_parsers_refuse_deep_nesting() -> None:
    with pytest.raises(protocol.BatchRejected, match="nested too deeply"):
        protocol.split_batch(DEEP + b"\n{}")
    with pytest.raises(Invalid, match="nested too deeply"):
        verify.verify_head("stall", DEEP)
    assert protocol._json_object(DEEP) is None  # a hostile receiver's answer


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    async with running_receiver(tmp_path / "receiver") as rec:
        yield rec


async def test_receiver_enrolment_refuses_deep_nesting(receiver: Receiver) -> None:
    raw = b"[" * 2000 + b"]" * 2000  # fits ENROL_BODY_MAX, still too deep
    async with aiohttp.ClientSession() as session, session.post(
            f"{receiver.url}/v1/stalls/s1/enrol", data=raw,
            headers={"Content-Type": "application/json"}) as resp:
        problem = await resp.json(content_type=None)
    assert (resp.status, problem["field"]) == (422, "body"), problem


# ---- 3: an object that repeats a key is refused, not read by the last value ----

@pytest.mark.parametrize("raw", [
    b'{"client_ref": "a-ref-000001", "client_ref": "a-ref-000002",'
    b' "lines": [{"sku": "DES-CREME-BRULEE", "qty": 1}],'
    b' "payment": {"method": "cash", "tendered_minor": 1000}}',
    b'{"client_ref": "a-ref-000003", "lines": [{"sku": "DES-CREME-BRULEE",'
    b' "qty": 1, "qty": 100}], "payment": {"method": "cash",'
    b' "tendered_minor": 1000}}',
])
async def test_a_repeated_key_is_422_and_sells_nothing(
        client: TestClient, token: str, raw: bytes) -> None:
    await _body_refused_and_nothing_sold(client, token, raw, "appears twice")


def test_a_live_event_repeating_a_key_is_input_error() -> None:
    raw = b'{"type": "stream.ended", "type": "product.pinned", "id": "e1"}'
    with pytest.raises(InputError, match="appears twice"):
        parse_body(raw)


async def test_receiver_enrolment_refuses_a_repeated_key(receiver: Receiver) -> None:
    raw = b'{"public_key": "a", "public_key": "b"}'
    async with aiohttp.ClientSession() as session, session.post(
            f"{receiver.url}/v1/stalls/s1/enrol", data=raw,
            headers={"Content-Type": "application/json"}) as resp:
        problem = await resp.json(content_type=None)
    assert (resp.status, problem["field"]) == (422, "body"), problem


@pytest.mark.parametrize("digits", [41, 5000])
async def test_an_absurdly_long_number_is_422_and_sells_nothing(
        client: TestClient, token: str, digits: int) -> None:
    raw = (b'{"client_ref": "a-ref-000004", "lines": [{"sku": "DES-CREME-BRULEE",'
           b' "qty": 1}], "payment": {"method": "cash", "tendered_minor": '
           + b"9" * digits + b"}}")
    await _body_refused_and_nothing_sold(client, token, raw, "more than 40 digits")


def test_a_live_event_with_a_5000_digit_number_is_input_error() -> None:
    raw = b'{"type": "stream.ended", "id": "e1", "n": -' + b"1" * 5000 + b"}"
    with pytest.raises(InputError, match="more than 40 digits"):
        parse_body(raw)


# ---- 4: every JSON body an API route checks is documented ----------------------

async def test_every_json_post_route_documents_its_checked_body(
        client: TestClient, token: str) -> None:
    doc = await (await client.get("/api/v1/openapi.json",
                                  headers=auth(token))).json()
    reads_json = []
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method != "POST" or not path.startswith("/api/v1/"):
            continue
        source = inspect.getsource(route.handler)
        if "read_json(" not in source:
            continue
        reads_json.append(path)
        operation = doc["paths"][path]["post"]
        assert "requestBody" in operation, f"document the body of POST {path}"
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        spec_name = source.split("read_json(request, ", 1)[1].split(")", 1)[0]
        spec = inspect.getmodule(route.handler).__dict__.get(spec_name)  # type: ignore[union-attr]
        assert spec is not None and schema == spec.openapi(), path
    assert {"/api/v1/elevate", "/api/v1/receipts/verify",
            "/api/v1/days/close", "/api/v1/sales"} <= set(reads_json)
    elevate = doc["paths"]["/api/v1/elevate"]["post"]["requestBody"]
    assert elevate["content"]["application/json"]["schema"]["required"] == ["pin"]
