"""The JSON API under /api/v1 and the operations endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.catalog.apply import ImportRejected
from daemon.catalog.importer import MAX_CATALOG_BYTES
from daemon.display.web import sale_shown
from daemon.errors import InputError
from daemon.sales.checkout import annotate_carbon
from daemon.web import api_payments
from daemon.web.answer import json_answer
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.openapi import build_openapi
from daemon.web.problems import problem
from daemon.web.sale_body import SALE_BODY, payment_field, sale_request
from daemon.web.schema import Obj, Str, parse_json_body

PAIR_BODY = Obj({"code": Str(1, 12), "name": Str(1, 40)})
routes = web.RouteTableDef()


async def read_json(request: web.Request, spec: Obj) -> dict[str, Any]:
    """Parse and check a JSON body; wrong content is a 422 naming the field."""
    if request.content_type != "application/json":
        raise InputError("send Content-Type: application/json", field="body")
    return spec.check(parse_json_body(await request.read()))


async def read_limited(request: web.Request, limit: int) -> bytes:
    """Read a body that may exceed the app-wide limit, up to its own limit (413)."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit,
                                            actual_size=request.content_length)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(request: web.Request) -> str:
    """Return the peer address used to rate-limit pairing."""
    return request.remote or "unknown"


@routes.post("/api/v1/pair")
async def pair(request: web.Request) -> web.Response:
    body = await read_json(request, PAIR_BODY)
    box = request.app[STALLBOX]
    token = await box.pair(body["code"], body["name"], client_address(request))
    return web.json_response({"token": token}, status=201)


@routes.post("/api/v1/sales")
async def create_sale(request: web.Request) -> web.Response:
    body = await read_json(request, SALE_BODY)
    if api_payments.pays_by_card(body["payment"]):  # pending until it says (#3)
        return await api_payments.card_sale_response(request, body)
    try:
        outcome = await request.app[STALLBOX].sell(
            sale_request(body, request[TABLET_KEY]))
    except InputError as err:
        raise payment_field(err, body["payment"]) from err
    if outcome.created:
        sale_shown(request, outcome.sale)  # the till's customer display (#8)
    status = 201 if outcome.created else 200
    return json_answer(outcome.sale, status=status)


@routes.get("/api/v1/sales")
async def list_sales(request: web.Request) -> web.Response:
    before = _int_param(request, "before_seq", None, 1, 2**62)
    limit = _int_param(request, "limit", 50, 1, 200)
    items = await request.app[STALLBOX].sales(before, limit or 50)
    next_before = items[-1]["seq"] if len(items) == limit else None
    return web.json_response({"items": items, "next_before_seq": next_before})


@routes.get("/api/v1/sales/{id}")
async def get_sale(request: web.Request) -> web.Response:
    sale = await request.app[STALLBOX].sale(request.match_info["id"])
    await api_payments.add_card_payment(request, sale)
    return json_answer(sale)


@routes.get("/api/v1/sales/{id}/receipt")
async def get_receipt(request: web.Request) -> web.Response:
    text = await request.app[STALLBOX].receipt_text(request.match_info["id"])
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


@routes.post("/api/v1/sales/{id}/reprint")
async def reprint(request: web.Request) -> web.Response:
    job_id = await request.app[STALLBOX].reprint(request.match_info["id"])
    return web.json_response({"job_id": job_id, "reprint": True}, status=202)


@routes.get("/api/v1/products")
async def products(request: web.Request) -> web.Response:
    q = request.query.get("q", "")[:100]
    category = request.query.get("category", "")[:100]
    limit = _int_param(request, "limit", 100, 1, 500)
    box = request.app[STALLBOX]
    items = await box.products(q, category, limit or 100)
    return web.json_response(
        {"items": annotate_carbon(items, box.config.billing.carbon)})


@routes.post("/api/v1/catalog/import")
async def import_catalog(request: web.Request) -> web.Response:
    if request.content_type not in ("text/csv", "text/plain"):
        raise InputError("send the export with Content-Type: text/csv", field="body")
    data = await read_limited(request, MAX_CATALOG_BYTES)
    skip = request.query.get("skip_invalid", "") in ("1", "true", "yes")
    box = request.app[STALLBOX]
    try:
        outcome = await box.import_catalog(data, skip_invalid=skip)
    except ImportRejected as err:
        return problem(422, "Catalog rejected", err.detail, imported=0,
                       rejected=[{"row": r.row, "reason": r.reason}
                                 for r in err.rejected])
    return web.json_response({
        "imported": outcome.imported, "changed": outcome.changed,
        "skipped": outcome.skipped, "format": outcome.format,
        "rejected": [{"row": r.row, "reason": r.reason} for r in outcome.rejected],
    })


@routes.get("/api/v1/printer")
async def printer_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STALLBOX].healthz()["printer"])


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app.router))


def _int_param(request: web.Request, name: str, default: int | None, low: int,
               high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw[:20]) <= high:
        raise InputError(f"{name} must be an integer from {low} to {high}",
                         field=name)
    return int(raw)
