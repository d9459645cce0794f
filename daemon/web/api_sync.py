"""The sync status and "sync now" for the sync page and integrations."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from daemon.runtime import Stallbox
from daemon.web.keys import STALLBOX

RETRY_WAIT_S = 2.0  # answer with the round's outcome if it is that quick
routes = web.RouteTableDef()


def _status(box: Stallbox) -> dict[str, Any]:
    return box.healthz()["sync"]


@routes.get("/api/v1/sync")
async def sync_status(request: web.Request) -> web.Response:
    return web.json_response(_status(request.app[STALLBOX]))


@routes.post("/api/v1/sync/retry")
async def sync_retry(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    if box.sync is None:
        return web.json_response(_status(box), status=409)
    round_done = box.sync.retry()  # unparks, and joins a running round
    try:
        async with asyncio.timeout(RETRY_WAIT_S):
            await asyncio.shield(round_done)
    except TimeoutError:
        pass  # still draining: the page polls GET /api/v1/sync
    return web.json_response(_status(box), status=202)
