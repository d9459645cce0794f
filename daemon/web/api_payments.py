"""The card payment API: card sales, payment status, cancel, resolve, terminal."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from daemon.display.web import sale_shown
from daemon.errors import InputError
from daemon.payments import intents
from daemon.payments.card_sale import CardSaleRequest
from daemon.payments.service import TerminalService, require, start_terminal
from daemon.sales.queries import get_sale
from daemon.sales.service import SaleRequest
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.schema import Int, Obj, Str

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()


@dataclass(slots=True)
class TerminalSlot:
    """Where the running terminal service is found (None: no terminal)."""

    service: TerminalService | None = None


TERMINAL: web.AppKey[TerminalSlot] = web.AppKey("terminal", TerminalSlot)
RESOLVE_BODY = Obj({"outcome": Str(choices=("approved", "declined")),
                    "by": Str(1, 40), "note": Str(0, 200)},
                   optional=frozenset({"note"}))
RETRY_BODY = Obj({"sale_id": Str(1, 64)})
PAY_CASH_BODY = Obj({"tendered_minor": Int(0, 10**12)})


def service_of(request: web.Request) -> TerminalService:
    """Return the terminal service, or 404 when no terminal is configured."""
    return require(request.app[TERMINAL].service)


def setup(app: web.Application) -> None:
    """Add the card API and pages; run the terminal after the journal opens."""
    from daemon.web import pages_card  # its pages use this module

    app.add_routes(routes)
    app.add_routes(pages_card.routes)
    slot = app[TERMINAL] = TerminalSlot()
    env = aiohttp_jinja2.get_env(app)
    env.globals["card_payments"] = lambda: slot.service is not None
    app.cleanup_ctx.append(_terminal_lifecycle)


async def _terminal_lifecycle(app: web.Application) -> AsyncIterator[None]:
    slot = app[TERMINAL]
    box = app[STALLBOX]
    slot.service = box.terminal = await start_terminal(box)
    yield
    if slot.service is not None:
        box.terminal = None
        await slot.service.stop()


async def card_sale_response(request: web.Request,
                             body: dict[str, Any]) -> web.Response:
    """Open a card sale (202) or return the one this client_ref made (200)."""
    from daemon.web.sale_body import payment_field

    sale_request = card_sale_request(body, request[TABLET_KEY])  # 422 before 404
    service = service_of(request)
    try:
        outcome = await service.sell(CardSaleRequest(sale_request, service.name))
    except InputError as err:
        raise payment_field(err, body["payment"]) from err
    sale = await request.app[STALLBOX].sale(outcome.sale_id)
    await add_card_payment(request, sale)
    return web.json_response(sale, status=202 if outcome.created else 200)


def pays_by_card(payment: dict[str, Any]) -> bool:
    """Say whether a checked payment has a card part (alone or in a split)."""
    return payment["method"] == "card" or any(
        t["method"] == "card" for t in payment.get("tenders", ()))


def card_sale_request(body: dict[str, Any], tablet: str) -> SaleRequest:
    """Read a sale body with a card part; a card alone pays the whole total."""
    from daemon.web.sale_body import sale_request

    if body["payment"]["method"] == "split":
        return sale_request(body, tablet)
    extra = sorted(set(body["payment"]) - {"method"})
    if extra:
        raise InputError(f"payment.{extra[0]} does not apply: the card pays the "
                         "whole total (to pay part by card, use a split payment)",
                         field=f"payment.{extra[0]}")
    placeholder = {**body, "payment": {"method": "cash", "tendered_minor": 0}}
    return replace(sale_request(placeholder, tablet), tenders=())


async def add_card_payment(request: web.Request, sale: dict[str, Any]) -> None:
    """Add the sale's newest card attempt as ``payment``, if it has one."""
    service = request.app[TERMINAL].service
    if service is None:
        return
    sale_id = sale["id"]
    fresh, intent = await request.app[STALLBOX].reader.run(
        lambda c: _sale_and_intent(c, sale_id))
    if intent is not None:  # one snapshot: the sale's rows agree with its intent
        sale.update(fresh or {})
        sale["payment"] = service.with_prompt(intent)


def _sale_and_intent(conn: Any, sale_id: str
                     ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    intent = intents.latest_for_sale(conn, sale_id)
    return (get_sale(conn, sale_id) if intent else None), intent


@routes.post("/api/v1/payments")
async def retry_payment(request: web.Request) -> web.Response:
    from daemon.web.api import read_json  # api registers these routes' hook

    body = await read_json(request, RETRY_BODY)
    service = service_of(request)
    intent_id = await service.retry(body["sale_id"])
    return web.json_response(await service.intent(intent_id), status=202)


@routes.get("/api/v1/payments")
async def list_unknown(request: web.Request) -> web.Response:
    service = service_of(request)
    return web.json_response({"unknown": await service.unknown()})


@routes.get("/api/v1/payments/{id}")
async def get_payment(request: web.Request) -> web.Response:
    intent = await service_of(request).intent(request.match_info["id"])
    return web.json_response(intent)


@routes.get("/api/v1/payments/{id}/events")
async def payment_events(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    intent_id = request.match_info["id"]
    await service.intent(intent_id)  # 404 before the stream starts
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    async for intent in service.watch(intent_id):
        data = json.dumps(intent, ensure_ascii=False)
        await response.write(f"event: payment\ndata: {data}\n\n".encode())
    return response


@routes.post("/api/v1/payments/{id}/cancel")
async def cancel_payment(request: web.Request) -> web.Response:
    intent = await service_of(request).cancel(request.match_info["id"])
    status = 202 if intent["outcome"] == "pending" else 200
    return web.json_response(intent, status=status)


@routes.post("/api/v1/payments/{id}/resolve")
async def resolve_payment(request: web.Request) -> web.Response:
    from daemon.web.api import read_json

    body = await read_json(request, RESOLVE_BODY)
    who = f"{body['by']} on {request[TABLET_KEY]}"
    intent = await service_of(request).resolve(
        request.match_info["id"], body["outcome"], who, body.get("note", ""))
    return web.json_response(intent)


@routes.post("/api/v1/payments/{id}/cancel-sale")
async def cancel_sale(request: web.Request) -> web.Response:
    service = service_of(request)
    intent = await service.intent(request.match_info["id"])
    await service.cancel_sale(intent["sale_id"], request[TABLET_KEY])
    sale = await request.app[STALLBOX].sale(intent["sale_id"])
    return web.json_response(sale)


@routes.post("/api/v1/sales/{id}/pay-cash")
async def pay_rest_in_cash(request: web.Request) -> web.Response:
    from daemon.web.api import read_json

    body = await read_json(request, PAY_CASH_BODY)
    sale_id = request.match_info["id"][:64]
    await service_of(request).pay_rest_in_cash(sale_id, body["tendered_minor"],
                                               request[TABLET_KEY])
    sale = await request.app[STALLBOX].sale(sale_id)
    sale_shown(request, sale)  # the customer display thanks, as for cash (#8)
    await add_card_payment(request, sale)
    return web.json_response(sale)


@routes.get("/api/v1/terminal")
async def terminal_status(request: web.Request) -> web.Response:
    service = request.app[TERMINAL].service
    if service is None:
        return web.json_response({"protocol": "none", "state": "none"})
    return web.json_response(service.status())


@routes.post("/api/v1/terminal/end-of-day")
async def end_of_day(request: web.Request) -> web.Response:
    report = await service_of(request).end_of_day(request[TABLET_KEY])
    return web.json_response(report)
