"""E-receipt routes: the API and the sale page's form, and the outbox's lifecycle.

    POST /api/v1/sales/{id}/email   {"email": "...", "consent": true} -> 202
    GET  /api/v1/sales/{id}/email   the state (queued, sent, failed), no address
    POST /sales/{id}/email          the same from the sale page (form, no JS)

Without an explicit consent the address is refused (422) before it is read
further; it is sealed under the day's data key in a worker thread and only
the sealed token is journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from daemon.ereceipt import store
from daemon.ereceipt.address import check_address
from daemon.ereceipt.outbox import EmailOutbox, shred_timer
from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.store import utc_now
from daemon.web.api import read_json
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import check_same_origin
from daemon.web.schema import Bool, Obj, Str

_LOG = logging.getLogger(__name__)
EMAIL_BODY = Obj({"email": Str(1, 254), "consent": Bool()})
routes = web.RouteTableDef()


@dataclass(slots=True)
class OutboxSlot:
    """Where the running outbox is found; empty when [email] is not set."""

    outbox: EmailOutbox | None = None


OUTBOX: web.AppKey[OutboxSlot] = web.AppKey("email_outbox", OutboxSlot)


async def request_receipt_mail(app: web.Application, sale_id: str, raw: str,
                               consent: bool) -> dict[str, Any]:
    """Check consent and address, seal it, journal the request, wake the outbox."""
    if consent is not True:
        raise InputError("the customer's consent is required to keep an e-mail "
                         "address", field="consent")
    address = check_address(raw)
    outbox = app[OUTBOX].outbox
    if outbox is None:
        raise ConflictError("e-receipts are not set up on this stall ([email] in "
                            "the config)")
    box = app[STALLBOX]
    await box.sale(sale_id)  # 404 before a key is made for nothing
    day = utc_now()[:10]
    # refused (asked already, day shredded) before a day key is made for nothing
    await box.reader.run(lambda c: store.check_request(c, sale_id, day))
    token = await asyncio.to_thread(outbox.keys.encrypt, date.fromisoformat(day),
                                    address, sale_id)
    result = await box.journal.transact(
        lambda tx: store.request_email(tx, sale_id, day, token))
    outbox.wake()
    _LOG.info("e-receipt of sale %s queued%s", sale_id,
              " (replacing one that failed)" if result["replaced"] else "")
    return result


@routes.post("/api/v1/sales/{id}/email")
async def api_request(request: web.Request) -> web.Response:
    body = await read_json(request, EMAIL_BODY)
    result = await request_receipt_mail(request.app, request.match_info["id"],
                                         body["email"], body["consent"])
    return web.json_response(result, status=202)


@routes.get("/api/v1/sales/{id}/email")
async def api_status(request: web.Request) -> web.Response:
    sale_id = request.match_info["id"]
    box = request.app[STALLBOX]
    await box.sale(sale_id)
    found = await box.reader.run(lambda c: store.email_status(c, sale_id))
    if found is None:
        raise NotFoundError("no e-receipt was asked for this sale")
    return web.json_response(found)


@routes.post("/sales/{id}/email")
async def page_request(request: web.Request) -> web.Response:
    from daemon.web.pages_sales import render_sale  # pages import this module

    check_same_origin(request)
    sale_id = request.match_info["id"]
    form = await request.post()
    try:
        raw, consent = _one_value(form, "email"), _one_value(form, "consent")
        await request_receipt_mail(request.app, sale_id,
                                   raw if isinstance(raw, str) else "",
                                   consent == "yes")
    except (InputError, ConflictError) as err:
        status = 422 if isinstance(err, InputError) else 409
        return await render_sale(request, sale_id, status=status,
                                 email_error=str(err))
    raise web.HTTPSeeOther(f"/sales/{sale_id}?emailed=1")


def _one_value(form: Any, name: str) -> Any:
    """Return a form field given at most once; twice (consent=yes&consent=no)
    is no clear answer."""
    values = form.getall(name, [])
    if len(values) > 1:
        raise InputError(f"{name} was sent {len(values)} times; send it once",
                         field=name)
    return values[0] if values else ""


async def email_context(request: web.Request, sale_id: str) -> dict[str, Any]:
    """Return what the sale page shows about its e-receipt."""
    box = request.app[STALLBOX]
    return {"email_enabled": request.app[OUTBOX].outbox is not None,
            "email": await box.reader.run(lambda c: store.email_status(c, sale_id)),
            "emailed": request.query.get("emailed") == "1"}


def install(app: web.Application) -> None:
    """Add the routes and, when [email] is set, run the outbox and the shredder."""
    app.add_routes(routes)
    app[OUTBOX] = OutboxSlot()
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    box = app[STALLBOX]
    settings = box.config.email
    if settings is None:
        yield
        return
    outbox = EmailOutbox(box, settings)
    app[OUTBOX].outbox = outbox
    tasks = [asyncio.create_task(outbox.run(), name="email-outbox"),
             asyncio.create_task(shred_timer(box, outbox.keys,
                                             settings.retention_days),
                                 name="email-shredder")]
    yield
    app[OUTBOX].outbox = None
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
