"""Gift card balances over HTTP: check one by its code, list them for the manager.

- ``POST /api/v1/gift-cards/balance`` ``{"code"}`` (cashier): the card masked,
  its balance and status; 404 for an unknown code. The code travels in the
  body, never in a URL, so it stays out of access logs and browser history.
- ``GET /api/v1/gift-cards`` (manager): cards newest first, masked, and what
  all active cards are still worth (the stall's gift card liability).
- ``GET /gift-cards``, ``POST /gift-cards`` (cashier): the till's balance
  check page.

Paying with a card is a ``gift_card`` tender of ``POST /api/v1/sales`` or the
till's "Voucher, gift card or split" form (``daemon.sales.giftcards``).
"""

from __future__ import annotations

from aiohttp import web

from daemon.errors import InputError, NotFoundError
from daemon.sales import giftcards
from daemon.web.api import read_json
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import check_same_origin, form_fields, render
from daemon.web.schema import Obj, Str

routes = web.RouteTableDef()


class CodeText(Str):
    """A typed gift card code: any malformed one gets the one rule's words."""

    def check(self, value: object, path: str) -> str:
        giftcards.normalize_code(value, path)  # raises InputError(CODE_RULE)
        return super().check(value, path)


BALANCE_BODY = Obj({"code": CodeText(1, giftcards.MAX_CODE_TEXT)})


@routes.post("/api/v1/gift-cards/balance")
async def api_balance(request: web.Request) -> web.Response:
    body = await read_json(request, BALANCE_BODY)
    box = request.app[STALLBOX]
    code = body["code"]
    return web.json_response(
        await box.reader.run(lambda c: giftcards.balance(c, code)))


@routes.get("/api/v1/gift-cards")
async def api_list(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]

    def read(conn: object) -> dict[str, object]:
        return {"items": giftcards.list_cards(conn),
                "liability": giftcards.liability(conn),
                "currency": box.config.stall.currency.code}

    return web.json_response(await box.reader.run(read))


@routes.get("/gift-cards")
async def balance_page(request: web.Request) -> web.Response:
    return render(request, "gift_cards.html", card=None, error="")


@routes.post("/gift-cards")
async def balance_submit(request: web.Request) -> web.Response:
    check_same_origin(request)
    box = request.app[STALLBOX]
    try:
        code = (await form_fields(request, "code"))["code"]
        card = await box.reader.run(lambda c: giftcards.balance(c, code))
    except InputError as err:
        return render(request, "gift_cards.html", status=422, card=None,
                      error=err.detail)
    except NotFoundError as err:
        return render(request, "gift_cards.html", status=404, card=None,
                      error=str(err))
    return render(request, "gift_cards.html", card=card, error="")
