"""Trust routes: the public receipt check (page and API) and closing a shift."""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.errors import InputError
from daemon.trust import closures
from daemon.trust.excerpt import MAX_TEXT, ExcerptCheck
from daemon.trust.receipts import EpochBook, check_receipt
from daemon.web.api import read_json
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import render
from daemon.web.schema import Obj, Str

_LOG = logging.getLogger(__name__)
CLOSE_DAY_BODY = Obj({"client_ref": Str(8, 64)})
VERIFY_BODY = Obj({"receipt": Str(1, MAX_TEXT, printable=False)})  # pasted lines
EPOCH_BOOK: web.AppKey[EpochBook] = web.AppKey("epoch_book", EpochBook)
routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    """Add the trust routes and the cache of checked epoch certificates."""
    app.add_routes(routes)
    app[EPOCH_BOOK] = EpochBook(None)


async def _check(request: web.Request, text: str) -> ExcerptCheck:
    box = request.app[STALLBOX]
    book = request.app[EPOCH_BOOK]
    if book.device_public is None and box.journal.signer is not None:
        book.device_public = box.journal.signer.device.public_bytes
    stall_id = box.config.stall.stall_id
    verdict = await box.reader.run(lambda c: check_receipt(c, text, book, stall_id))
    _LOG.debug("receipt check: %s", "genuine" if verdict.genuine else "refused")
    return verdict


@routes.post("/api/v1/receipts/verify")
async def verify_api(request: web.Request) -> web.Response:
    """Check a receipt's QR text; public, no account needed."""
    body = await read_json(request, VERIFY_BODY)
    return web.json_response((await _check(request, body["receipt"])).as_json())


@routes.get("/verify")
async def verify_page(request: web.Request) -> web.Response:
    """Show the receipt check form."""
    return render(request, "verify.html", result=None, text="")


@routes.post("/verify")
async def verify_submit(request: web.Request) -> web.Response:
    """Check the posted receipt text and show the verdict."""
    form = await request.post()
    text = form.get("receipt", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return render(request, "verify.html", 422, result=None, text="",
                      error="Paste the text under the receipt's QR code.")
    try:
        result = (await _check(request, text)).as_json()
    except InputError as err:
        return render(request, "verify.html", 422, result=None, text=text,
                      error=err.detail)
    return render(request, "verify.html", result=result, text=text)


@routes.post("/api/v1/days/close")
async def close_day(request: web.Request) -> web.Response:
    """Close the day: signed period and perpetual totals, then a new epoch key."""
    body = await read_json(request, CLOSE_DAY_BODY)
    box = request.app[STALLBOX]
    result = await box.journal.transact(
        lambda tx: closures.close_day(tx, body["client_ref"]))
    return web.json_response(result, status=201 if result.pop("created") else 200)
