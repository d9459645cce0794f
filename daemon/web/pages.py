"""Server-rendered pages for the staff tablets: pairing, errors, and the route list.

The pages themselves live in one module each (``pages_till``, ``pages_sales``,
``pages_printer``); ``routes`` here is every page route, for ``create_app``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from daemon.errors import InputError, RetryLaterError
from daemon.web import (
    pages_billing,
    pages_printer,
    pages_refunds,
    pages_sales,
    pages_sync,
    pages_till,
)
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import (
    TOKEN_COOKIE,
    base_context,
    check_same_origin,
    form_fields,
    render,
)

__all__ = ["base_context", "error_page", "form_fields", "routes"]
_LOG = logging.getLogger(__name__)
_pairing = web.RouteTableDef()
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
ERROR_TITLES = {401: "Not paired", 403: "Not allowed", 404: "Not found",
                409: "Conflict", 413: "Too much data",
                422: "Please check the input", 429: "Too many tries",
                503: "Try again in a moment"}


async def error_page(request: web.Request, status: int, detail: str) -> web.Response:
    """Render an error as a page a cashier can act on."""
    title = ERROR_TITLES.get(status, "Something went wrong")
    return render(request, "error.html", status=status, status_code=status,
                  title=title, detail=detail)


@_pairing.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/till")


@_pairing.get("/pair")
async def pair_page(request: web.Request) -> web.Response:
    return render(request, "pair.html")


@_pairing.post("/pair")
async def pair_submit(request: web.Request) -> web.Response:
    check_same_origin(request)
    fields = await form_fields(request, "code", "name")
    box = request.app[STALLBOX]
    try:
        token = await box.pair(fields["code"], fields["name"], request.remote or "")
    except (InputError, RetryLaterError) as err:
        status = 429 if isinstance(err, RetryLaterError) else 422
        return render(request, "pair.html", status=status, error=str(err),
                      name=fields["name"])
    response = web.HTTPSeeOther("/till")
    max_age_s = min(COOKIE_MAX_AGE_S, box.config.sessions.token_ttl_h * 3600)
    response.set_cookie(TOKEN_COOKIE, token, max_age=max_age_s, httponly=True,
                        samesite="Strict", path="/", secure=request.secure)
    raise response


routes: list[web.AbstractRouteDef] = [
    *_pairing, *pages_till.routes, *pages_sales.routes, *pages_printer.routes,
    *pages_billing.routes, *pages_refunds.routes, *pages_sync.routes,
]
