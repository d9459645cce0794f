"""The printer status page: state, reason and what to do, in a cashier's words."""

from __future__ import annotations

import logging

from aiohttp import web
from markupsafe import Markup

from daemon.ops.web import qr_svg, setup_url
from daemon.web.pages_common import render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/printer")
async def printer_page(request: web.Request) -> web.Response:
    # The shared context already holds the described printer state (the badge).
    # Android tablets often cannot resolve .local: show the IP URL and its QR.
    url = setup_url(request)
    return render(request, "printer.html", setup_url=url,
                  setup_qr=Markup(qr_svg(url)))  # noqa: S704 - SVG made here
