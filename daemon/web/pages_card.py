"""Card checkout on the till and the devices page (terminal status, end-of-day).

The card page works without JavaScript: while the terminal works it reloads
itself every second (a meta refresh inside ``noscript``); with JavaScript it
follows the payment's server-sent events and reloads when it is final.
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.billing.tenders import Tender
from daemon.errors import InputError
from daemon.money import Currency
from daemon.payments.card_sale import CardSaleRequest
from daemon.web.api_payments import TERMINAL, service_of
from daemon.web.cart import new_client_ref, store_for
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import check_same_origin, form_fields, render, tablet_key
from daemon.web.pages_till import show_cart
from daemon.web.till_order import cart_sale

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()
REFRESH_S = 1  # page reload interval while a payment runs, without JavaScript


@routes.post("/till/card")
async def card_checkout(request: web.Request) -> web.Response:
    check_same_origin(request)
    fields = await form_fields(request, "client_ref", "card_amount", "cash_given")
    service = service_of(request)
    store = store_for(request.app[STALLBOX])
    key = tablet_key(request)
    async with store.lock(key):
        cart = store.cart(key)
        if fields["client_ref"] != cart.client_ref or not cart.lines:
            raise web.HTTPSeeOther("/till#cart")
        tenders = split_tenders(request, fields)
        sale = cart_sale(cart, request[TABLET_KEY], tenders)  # options too (#4)
        outcome = await service.sell(CardSaleRequest(sale, service.name))
    if outcome.intent_id is None:  # the ref became a sale paid otherwise
        raise web.HTTPSeeOther(f"/sales/{outcome.sale_id}")
    raise web.HTTPSeeOther(f"/till/card/{outcome.intent_id}")


def split_tenders(request: web.Request, fields: dict[str, str]) -> tuple[Tender, ...]:
    """Return card + cash tenders when a card amount was typed, else none.

    No tenders means the card pays the whole total. With a card amount, the
    card is charged exactly that and the cash given covers the rest, rounded
    by the stall's cash rule (#4).
    """
    if not fields["card_amount"].strip():
        return ()
    currency = request.app[STALLBOX].config.stall.currency
    card_minor = _amount(currency, fields["card_amount"], "card_amount")
    cash_minor = _amount(currency, fields["cash_given"] or "0", "cash_given")
    if card_minor <= 0:
        raise InputError("the card amount must be more than zero",
                         field="card_amount")
    return (Tender("card", card_minor), Tender("cash", cash_minor))


def _amount(currency: Currency, text: str, field: str) -> int:
    try:
        amount = currency.parse(text.replace(currency.symbol, ""))
    except InputError as err:
        raise InputError(f"{field.replace('_', ' ')}: {err.detail}",
                         field=field) from err
    if amount < 0:
        raise InputError(f"{field.replace('_', ' ')} cannot be negative",
                         field=field)
    return amount


@routes.get("/till/card/{id}")
async def card_page(request: web.Request) -> web.Response:
    service = service_of(request)
    intent = await service.intent(request.match_info["id"])
    box = request.app[STALLBOX]
    sale = await box.sale(intent["sale_id"])
    if intent["outcome"] == "approved":
        store_for(box).finish(tablet_key(request), sale["client_ref"], sale["id"])
    return render(request, "card.html", intent=intent, sale=sale,
                  refresh_s=REFRESH_S)


@routes.post("/till/card/{id}/cancel")
async def card_cancel(request: web.Request) -> web.Response:
    check_same_origin(request)
    intent_id = request.match_info["id"]
    await service_of(request).cancel(intent_id)
    raise web.HTTPSeeOther(f"/till/card/{intent_id}")


@routes.post("/till/card/{id}/retry")
async def card_retry(request: web.Request) -> web.Response:
    check_same_origin(request)
    service = service_of(request)
    intent = await service.intent(request.match_info["id"])
    new_id = await service.retry(intent["sale_id"])
    raise web.HTTPSeeOther(f"/till/card/{new_id}")


@routes.post("/till/card/{id}/cancel-sale")
async def card_cancel_sale(request: web.Request) -> web.Response:
    check_same_origin(request)
    service = service_of(request)
    intent = await service.intent(request.match_info["id"])
    await service.cancel_sale(intent["sale_id"], request[TABLET_KEY])
    store = store_for(request.app[STALLBOX])
    cart = store.cart(tablet_key(request))
    sale = await request.app[STALLBOX].sale(intent["sale_id"])
    if cart.client_ref == sale["client_ref"]:
        cart.client_ref = new_client_ref()  # the items stay; the ref is spent
    await show_cart(request, cart)  # the customer display leaves the card state
    raise web.HTTPSeeOther("/till#cart")


@routes.post("/till/card/{id}/resolve")
async def card_resolve(request: web.Request) -> web.Response:
    check_same_origin(request)
    fields = await form_fields(request, "outcome", "by", "note")
    intent_id = request.match_info["id"]
    by = fields["by"].strip()[:40]
    if not by or fields["outcome"] not in ("approved", "declined"):
        return await _card_error(request, intent_id,
                                 "type your name and tap what the slip says")
    who = f"{by} on {request[TABLET_KEY]}"
    await service_of(request).resolve(intent_id, fields["outcome"], who,
                                      fields["note"].strip()[:200])
    raise web.HTTPSeeOther(f"/till/card/{intent_id}")


async def _card_error(request: web.Request, intent_id: str,
                      error: str) -> web.Response:
    service = service_of(request)
    intent = await service.intent(intent_id)
    sale = await request.app[STALLBOX].sale(intent["sale_id"])
    return render(request, "card.html", status=422, intent=intent, sale=sale,
                  refresh_s=REFRESH_S, error=error)


@routes.get("/devices")
async def devices_page(request: web.Request) -> web.Response:
    service = request.app[TERMINAL].service
    terminal = service.status() if service else None
    unknown = await service.unknown() if service else []
    return render(request, "devices.html", terminal=terminal, unknown=unknown,
                  report=terminal["last_end_of_day"] if terminal else None)


@routes.post("/devices/end-of-day")
async def devices_end_of_day(request: web.Request) -> web.Response:
    check_same_origin(request)
    service = service_of(request)
    report = await service.end_of_day(request[TABLET_KEY])
    return render(request, "devices.html", terminal=service.status(),
                  unknown=await service.unknown(), report=report)
