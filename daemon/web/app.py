"""Build the aiohttp application: middlewares, routes and lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from daemon.config import Config
from daemon.display import web as display_web
from daemon.ereceipt import web as ereceipt_web
from daemon.errors import StallboxError
from daemon.live import web as live_web
from daemon.ops import web as ops_web
from daemon.printing import start_printing
from daemon.runtime import Stallbox
from daemon.web import (
    api,
    api_billing,
    api_lan,
    api_payments,
    api_sync,
    pages,
    pages_lan,
)
from daemon.web import giftcards as giftcard_routes
from daemon.web import trust as trust_routes
from daemon.web.authz import auth_middleware, security_headers
from daemon.web.keys import STALLBOX
from daemon.web.problems import from_exception, http_error
from sync.service import start_sync

_LOG = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WEB_DIR = Path(__file__).parent


def _is_api(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/healthz", "/metrics"))


@web.middleware
async def errors_middleware(request: web.Request,
                            handler: Handler) -> web.StreamResponse:
    """Answer every error as problem+json (API) or an error page (pages)."""
    try:
        return await handler(request)
    except web.HTTPRedirection:
        raise
    except web.HTTPException as err:
        if _is_api(request) or err.status == 413:
            return http_error(err)
        return await pages.error_page(request, err.status, err.reason)
    except StallboxError as err:
        response = from_exception(err)
        if _is_api(request):
            return response
        return await pages.error_page(request, response.status, str(err))


def create_app(config: Config) -> web.Application:
    """Return the application; its startup opens the journal and devices."""
    app = web.Application(middlewares=[errors_middleware, auth_middleware],
                          client_max_size=config.max_body_bytes)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
                         autoescape=jinja2.select_autoescape(default=True))
    app.add_routes(api.routes)
    app.add_routes(api_sync.routes)
    app.add_routes(api_billing.routes)
    app.add_routes(giftcard_routes.routes)  # balances, liability (#4)
    app.add_routes(pages.routes)
    app.add_routes(api_lan.routes)  # elevation, tablets, pairing codes (#6)
    app.add_routes(pages_lan.routes)
    app.on_response_prepare.append(security_headers)  # CSP and friends (#6)
    trust_routes.setup(app)
    app.router.add_static("/static/", WEB_DIR / "static", name="static")
    app[STALLBOX] = Stallbox(config)
    ops_web.install(app)  # /healthz, /metrics, /clock, disk reserve (#7)
    app.cleanup_ctx.append(_lifecycle)
    ereceipt_web.install(app)  # e-receipts and their outbox, after the journal (#6)
    live_web.install(app)  # live selling before the display that shows it (#8)
    display_web.install(app)
    api_payments.setup(app)  # card API, pages and terminal (#3)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    box = app[STALLBOX]
    await box.open()
    printing = await start_printing(box)
    syncing = await start_sync(box)
    yield
    if syncing is not None:
        await syncing.stop()
    if printing is not None:
        await printing.stop()
    await box.stop()
