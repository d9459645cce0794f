"""The printer status page: state, reason and what to do, in a cashier's words."""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.web.pages_common import render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/printer")
async def printer_page(request: web.Request) -> web.Response:
    # The shared context already holds the described printer state (the badge).
    return render(request, "printer.html")
