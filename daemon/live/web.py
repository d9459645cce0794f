"""HTTP routes of live selling: the signed webhook and the per-stream report."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from daemon.live.errors import SignatureRejected
from daemon.live.service import live_for
from daemon.live.signature import HEADER
from daemon.web.keys import STALLBOX
from daemon.web.problems import problem

_LOG = logging.getLogger(__name__)
MAX_EVENT_BYTES = 64 * 1024
EVENTS_PATH = "/api/v1/live/events"
routes = web.RouteTableDef()


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_EVENT_BYTES,
                                            actual_size=request.content_length)
    raw = await request.content.read(MAX_EVENT_BYTES + 1)
    if len(raw) > MAX_EVENT_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_EVENT_BYTES,
                                            actual_size=len(raw))
    return raw


@routes.post(EVENTS_PATH)
async def live_event(request: web.Request) -> web.Response:
    raw = await _read_body(request)
    live = live_for(request.app[STALLBOX])
    try:
        created = await live.receive(request.headers.get(HEADER, ""), raw)
    except SignatureRejected as err:
        _LOG.warning("live event refused: %s", err)
        return problem(401, "Unauthorized", str(err))
    status = 202 if created else 200
    return web.json_response({"accepted": True, "duplicate": not created},
                             status=status)


@routes.get("/api/v1/live/streams")
async def live_streams(request: web.Request) -> web.Response:
    items = await live_for(request.app[STALLBOX]).streams()
    return web.json_response({"items": items})


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    box = app[STALLBOX]
    live = live_for(box)
    await live.open()
    box.live = live
    yield


def install(app: web.Application) -> None:
    """Add live selling's routes and start-up to the application."""
    app.add_routes(routes)
    app.cleanup_ctx.append(_lifecycle)
