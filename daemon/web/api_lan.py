"""LAN API: elevate with the manager PIN, list and revoke tablets, issue codes.

- ``POST /api/v1/elevate`` ``{"pin"}``: this token may do manager actions for
  ``[pairing] manager_elevation_s``; 422 wrong PIN, 409 none set, 429 limited.
- ``DELETE /api/v1/elevate``: end it now (204).
- ``GET /api/v1/tablets``, ``POST /api/v1/tablets/{seq}/revoke`` (manager).
- ``POST /api/v1/pairing-codes`` (manager): a one-time code for a new tablet.
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.errors import NotFoundError
from daemon.lan.pin import MAX_DIGITS
from daemon.web.api import read_json
from daemon.web.authz import SESSION_KEY
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.schema import Obj, Str

_LOG = logging.getLogger(__name__)
ELEVATE_BODY = Obj({"pin": Str(1, MAX_DIGITS)})
routes = web.RouteTableDef()


@routes.post("/api/v1/elevate")
async def elevate(request: web.Request) -> web.Response:
    body = await read_json(request, ELEVATE_BODY)
    lasts_s = await request.app[STALLBOX].lan.elevate(request[SESSION_KEY],
                                                      body["pin"])
    return web.json_response({"role": "manager", "expires_in_s": lasts_s})


@routes.delete("/api/v1/elevate")
async def end_elevation(request: web.Request) -> web.Response:
    request[SESSION_KEY].elevated_until = 0.0
    return web.Response(status=204)


@routes.get("/api/v1/tablets")
async def list_tablets(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    return web.json_response({"items": await box.lan.tablets(box.reader)})


@routes.post("/api/v1/tablets/{seq}/revoke")
async def revoke_tablet(request: web.Request) -> web.Response:
    seq = request.match_info["seq"]
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        raise NotFoundError("no such tablet")
    box = request.app[STALLBOX]
    return web.json_response(
        await box.lan.revoke(int(seq), f"tablet {request[TABLET_KEY]}"))


@routes.post("/api/v1/pairing-codes")
async def new_pairing_code(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    code = await box.issue_pairing_code()
    _LOG.info("pairing code issued through the API by %r", request[TABLET_KEY])
    return web.json_response({"code": code,
                              "expires_in_s": box.config.pairing_code_ttl_s},
                             status=201)
