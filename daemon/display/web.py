"""Display routes: the customer page, its event stream, images, manager pages.

A display is a paired device like a tablet (cookie or Bearer token); it is
linked to a till by that till's paired name: ``/display?till=Till%201``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from yarl import URL

from daemon.display import images, store
from daemon.display.forms import creative_from_form, read_form
from daemon.display.model import BUCKET_S, LANGS, SIZES, Cohort
from daemon.display.render import render_cart, render_thanks
from daemon.display.service import display_for
from daemon.errors import InputError
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import check_same_origin, render, tablet_key

_LOG = logging.getLogger(__name__)
HEARTBEAT_S = 15.0
PREVIEW_BUCKETS = 8
_ZONE = re.compile(r"[A-Za-z0-9_-]{0,20}")
routes = web.RouteTableDef()


def cohort_of(request: web.Request) -> Cohort:
    """Return the display's cohort from its query and Accept-Language."""
    query = request.query
    size = query.get("size", "m")
    lang = query.get("lang") or request.headers.get("Accept-Language", "")[:2]
    zone = query.get("zone", "")
    default_lang = request.app[STALLBOX].config.stall.locale[:2].lower()
    return Cohort(size if size in SIZES else "m",
                  lang.lower() if lang.lower() in LANGS else default_lang,
                  zone if _ZONE.fullmatch(zone) else "")


def _till(request: web.Request) -> str:
    return request.query.get("till", "")[:40]


@functools.lru_cache(maxsize=1024)
def _events_url(till: str, cohort: Cohort) -> str:
    query = {"till": till, "size": cohort.size, "lang": cohort.lang}
    if cohort.zone:
        query["zone"] = cohort.zone
    return str(URL("/display/events").with_query(query))


@routes.get("/display")
async def display_page(request: web.Request) -> web.Response:
    display = display_for(request.app[STALLBOX])
    till, cohort = _till(request), cohort_of(request)
    html = await display.page(till, cohort, tablet_key(request),
                              _events_url(till, cohort))
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def sse_bytes(event: str, data: str) -> bytes:
    """Encode one server-sent event; each line of data gets its own field."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


@routes.get("/display/events")
async def display_events(request: web.Request) -> web.StreamResponse:
    display = display_for(request.app[STALLBOX])
    till, cohort = _till(request), cohort_of(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    sub = display.hub.subscribe(till, cohort, tablet_key(request))
    try:
        state = display.hub.state(till, display.clock())
        await response.write(b"retry: 2000\n\n" + sse_bytes(state.kind, state.text()))
        await _stream(response, sub.queue)
    except (ConnectionResetError, asyncio.CancelledError):
        _LOG.debug("display stream of till %r ended", till)
    finally:
        display.hub.unsubscribe(sub)
    return response


async def _stream(response: web.StreamResponse, queue: asyncio.Queue[Any]) -> None:
    while True:
        try:
            async with asyncio.timeout(HEARTBEAT_S):
                message = await queue.get()
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if message is None:
            return
        await response.write(sse_bytes(*message))


@routes.get("/display/creative/{name}")
async def creative_image(request: web.Request) -> web.StreamResponse:
    box = request.app[STALLBOX]
    path = images.path_of(box.config.state_dir, request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={
        "Cache-Control": "private, max-age=86400, immutable",
        "X-Content-Type-Options": "nosniff"})


@routes.get("/display/manage")
async def manage_page(request: web.Request) -> web.Response:
    return await _manage(request)


async def _manage(request: web.Request, status: int = 200,
                  error: str = "") -> web.Response:
    box = request.app[STALLBOX]
    display = display_for(box)
    stats = await box.reader.run(store.stats)
    return render(request, "display_manage.html", status=status, error=error,
                  creatives=display.creatives, stats=stats, sizes=SIZES,
                  langs=LANGS, bucket_s=BUCKET_S)


@routes.post("/display/manage/creatives")
async def save_creative(request: web.Request) -> web.Response:
    check_same_origin(request)
    box = request.app[STALLBOX]
    display = display_for(box)
    try:
        fields, upload = await read_form(request)
        image_name = await _store_image(request, upload) if upload else ""
        catalog = (await display.inventory()).catalog
        creative = creative_from_form(fields, image_name, catalog)
    except InputError as err:
        return await _manage(request, 422, err.detail)
    await box.journal.transact(lambda tx: _save(tx, creative, display))
    _LOG.info("creative %s (%s) saved", creative.id, creative.kind)
    raise web.HTTPSeeOther("/display/manage")


async def _store_image(request: web.Request, upload: bytes) -> str:
    clean = await asyncio.to_thread(images.clean_image, upload)
    state = request.app[STALLBOX].config.state_dir
    return await asyncio.to_thread(images.store, state, clean)


def _save(tx: Any, creative: Any, display: Any) -> None:
    store.save_creative(tx, creative)
    creatives = store.load_creatives(tx.conn)
    tx.after_commit(lambda: display.creatives_changed(creatives))


@routes.post("/display/manage/creatives/{id}/retire")
async def retire_creative(request: web.Request) -> web.Response:
    check_same_origin(request)
    box = request.app[STALLBOX]
    display = display_for(box)
    creative_id = request.match_info["id"]

    def retire(tx: Any) -> None:
        store.retire_creative(tx, creative_id)
        creatives = store.load_creatives(tx.conn)
        tx.after_commit(lambda: display.creatives_changed(creatives))

    await box.journal.transact(retire)
    raise web.HTTPSeeOther("/display/manage")


@routes.get("/display/preview")
async def preview(request: web.Request) -> web.Response:
    display = display_for(request.app[STALLBOX])
    cohort = cohort_of(request)
    inventory = await display.inventory()
    now = display.clock()
    first = int(now // BUCKET_S)
    slots = [display.slot_html(inventory, cohort, bucket, now)[1]
             for bucket in range(first, first + PREVIEW_BUCKETS)]
    return render(request, "display_preview.html", cohort=cohort, slots=slots,
                  sizes=SIZES, langs=LANGS, bucket_s=BUCKET_S)


@routes.get("/api/v1/display/stats")
async def display_stats(request: web.Request) -> web.Response:
    items = await request.app[STALLBOX].reader.run(store.stats)
    return web.json_response({"items": items})


def cart_shown(request: web.Request, cart: Any, totals: Any) -> None:
    """Push a till's cart (priced as the till shows it) to its displays."""
    box = request.app[STALLBOX]
    display = display_for(box)
    till = request.get(TABLET_KEY, "")
    if totals is None:
        display.show_cart(till, "")
        return
    lines = [{"name": ln.name, "qty": ln.qty, "unit_minor": ln.unit_minor,
              "amount_minor": ln.amount_minor,
              "normal_minor": cart.lines[ln.sku].unit_minor
              if ln.sku in cart.lines else ln.unit_minor}
             for ln in totals.lines]
    lines += [{"name": name, "qty": 1, "unit_minor": amount, "amount_minor": amount}
              for name, amount in getattr(totals, "extra", ())]
    display.show_cart(till, render_cart(lines, totals.total_minor, display.money))


def sale_shown(request: web.Request, sale: dict[str, Any]) -> None:
    """Push the thank-you of a till's sale to its displays (rendered when one
    looks: an API sale on a till without a display costs no render)."""
    display = display_for(request.app[STALLBOX])
    display.show_thanks(str(sale.get("tablet") or request.get(TABLET_KEY, "")),
                        make=lambda: render_thanks(sale, display.money))


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    box = app[STALLBOX]
    display = display_for(box)
    await display.open()
    if box.live is not None:
        box.live.board.listeners.append(display.changed)
        box.live.pricing.sale_listeners.append(display.sale_seen)
    box.catalog_listeners.append(display.catalog_changed)
    yield
    await display.close()


async def _follow_terminal(app: web.Application) -> None:
    """Show card payments once the terminal runs (it starts after the display)."""
    box = app[STALLBOX]
    terminal = getattr(box, "terminal", None)
    if terminal is not None:
        terminal.listeners.append(display_for(box).card.intent_changed)


async def _shutdown(app: web.Application) -> None:
    display_for(app[STALLBOX]).hub.close_all()


def install(app: web.Application) -> None:
    """Add the display's routes, start-up and shutdown to the application."""
    app.add_routes(routes)
    app.cleanup_ctx.append(_lifecycle)
    app.on_startup.append(_follow_terminal)  # after every cleanup_ctx start
    app.on_shutdown.append(_shutdown)
