"""Manager pages: the PIN form and the tablet list with revoke and new codes."""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.errors import ConflictError, InputError, RateLimitedError
from daemon.web.authz import (
    PIN_FIELD,
    SESSION_KEY,
    local_path,
    pin_page,
    pin_status,
)
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import form_fields, render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/elevate")
async def elevate_page(request: web.Request) -> web.Response:
    target = local_path(request.query.get("next", "/till"), request)
    return pin_page(request, {"next": target}, status=200)


@routes.post("/elevate")
async def elevate_submit(request: web.Request) -> web.Response:
    fields = await form_fields(request, PIN_FIELD, "next")
    target = local_path(fields["next"] or "/till", request)
    try:
        await request.app[STALLBOX].lan.elevate(request[SESSION_KEY],
                                                fields[PIN_FIELD])
    except (InputError, ConflictError, RateLimitedError) as err:
        return pin_page(request, {"next": target}, status=pin_status(err),
                        error=str(err))
    raise web.HTTPSeeOther(target)


@routes.post("/elevate/end")
async def elevate_end(request: web.Request) -> web.Response:
    request[SESSION_KEY].elevated_until = 0.0
    raise web.HTTPSeeOther("/till")


async def _tablets_page(request: web.Request, status: int = 200,
                        **extra: object) -> web.Response:
    box = request.app[STALLBOX]
    settings = box.config.sessions
    return render(request, "tablets.html", status=status,
                  tablets=await box.lan.tablets(box.reader),
                  ttl_h=settings.token_ttl_h, at_close=settings.expire_at_shift_close,
                  code_min=box.config.pairing_code_ttl_s // 60, **extra)


@routes.get("/tablets")
async def tablets_page(request: web.Request) -> web.Response:
    return await _tablets_page(request)


@routes.post("/tablets/code")
async def new_code(request: web.Request) -> web.Response:
    code = await request.app[STALLBOX].issue_pairing_code()
    _LOG.info("pairing code issued from tablet %r", request[TABLET_KEY])
    return await _tablets_page(request, code=code)


@routes.post("/tablets/{seq}/revoke")
async def revoke(request: web.Request) -> web.Response:
    seq = request.match_info["seq"]
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        raise web.HTTPNotFound(reason="no such tablet")
    await request.app[STALLBOX].lan.revoke(int(seq), f"tablet {request[TABLET_KEY]}")
    raise web.HTTPSeeOther("/tablets")
