"""Server-rendered pages for the staff tablets."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from daemon.errors import InputError, RetryLaterError
from daemon.web.keys import STALLBOX

routes = web.RouteTableDef()
TOKEN_COOKIE = "stallbox_token"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
MAX_FORM_FIELD = 200


def base_context(request: web.Request, **extra: Any) -> dict[str, Any]:
    """Return what every page template needs."""
    return {"stall_name": request.app[STALLBOX].config.stall.name, **extra}


async def error_page(request: web.Request, status: int, detail: str) -> web.Response:
    """Render an error as a page a cashier can act on."""
    titles = {401: "Not paired", 404: "Not found", 409: "Conflict",
              422: "Please check the input", 429: "Too many tries",
              503: "Try again in a moment"}
    context = base_context(request, status=status,
                           title=titles.get(status, "Something went wrong"),
                           detail=detail)
    return aiohttp_jinja2.render_template("error.html", request, context,
                                          status=status)


async def form_fields(request: web.Request, *names: str) -> dict[str, str]:
    """Read named fields of a url-encoded form, bounded in length."""
    form = await request.post()
    out = {}
    for name in names:
        value = form.get(name, "")
        if not isinstance(value, str):
            raise InputError(f"{name} must be text", field=name)
        out[name] = value[:MAX_FORM_FIELD]
    return out


@routes.get("/pair")
async def pair_page(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("pair.html", request, base_context(request))


@routes.post("/pair")
async def pair_submit(request: web.Request) -> web.Response:
    fields = await form_fields(request, "code", "name")
    box = request.app[STALLBOX]
    try:
        token = await box.pair(fields["code"], fields["name"], request.remote or "")
    except (InputError, RetryLaterError) as err:
        status = 429 if isinstance(err, RetryLaterError) else 422
        context = base_context(request, error=str(err), name=fields["name"])
        return aiohttp_jinja2.render_template("pair.html", request, context,
                                              status=status)
    response = web.HTTPSeeOther("/till")
    response.set_cookie(TOKEN_COOKIE, token, max_age=COOKIE_MAX_AGE_S,
                        httponly=True, samesite="Strict", path="/")
    raise response
