"""Operations routes: /healthz, /metrics, the clock page; request timing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from daemon.errors import InputError
from daemon.ops import health, metrics
from daemon.ops.clock import CLOCK, correction_for
from daemon.ops.disk import DiskGuard
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import check_same_origin, form_fields, render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
CLOCK_EVENT = "clock.corrected"


@dataclass(slots=True)
class Ops:
    """What the operations routes share: the disk guard and the timings."""

    disk: DiskGuard
    registry: metrics.Registry


OPS: web.AppKey[Ops] = web.AppKey("ops", Ops)


def install(app: web.Application) -> None:
    """Add the routes, time every request, refuse sales below the disk reserve."""
    box = app[STALLBOX]
    reserve = box.config.disk_reserve_mb * 1024 * 1024
    ops = app[OPS] = Ops(DiskGuard(box.config.state_dir, reserve), metrics.Registry())
    # guard.check re-reads free space at most once a second: no system call
    # per sale (a missing state dir is not checked, as before)
    box.guards.append(ops.disk.check)
    app.middlewares.append(metrics.middleware(ops.registry))
    app.add_routes(routes)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    doc = health.document(request.app, request.app[OPS].disk)
    return web.json_response(doc, status=200 if doc["status"] == "ok" else 503)


@routes.get("/metrics")
async def metrics_page(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    text = await health.exposition(request.app, ops.disk, ops.registry)
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


@routes.get("/clock")
async def clock_page(request: web.Request) -> web.Response:
    return render(request, "clock.html", clock=CLOCK.state_dict())


@routes.post("/clock")
async def clock_set(request: web.Request) -> web.Response:
    check_same_origin(request)
    fields = await form_fields(request, "epoch_ms", "local")
    wanted = _wanted_time(fields["epoch_ms"], fields["local"])
    try:
        offset = correction_for(wanted)
    except ValueError as err:
        raise InputError(str(err), field="local") from err
    box = request.app[STALLBOX]
    await box.journal.append(CLOCK_EVENT, {
        "offset_ms": round(offset * 1000), "by": request[TABLET_KEY],
        "kernel_synced": CLOCK.synced})
    CLOCK.offset_s = offset
    _LOG.info("clock corrected by %.1f s from a page", offset)
    raise web.HTTPSeeOther("clock")


def _wanted_time(epoch_ms: str, local: str) -> datetime:
    """Read the tablet's clock (sent by the page) or a typed local time."""
    if epoch_ms.isdigit() and len(epoch_ms) <= 15:
        return datetime.fromtimestamp(int(epoch_ms) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(local.strip())
    except ValueError as err:
        raise InputError("enter the time as YYYY-MM-DD HH:MM", field="local") from err
    return moment.astimezone() if moment.tzinfo is None else moment


def setup_url(request: web.Request) -> str:
    """Return http://IP:port/ as the tablet reached this box (never .local)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport \
        else None
    if not sockname:
        return f"http://{request.host}/"
    host, port = sockname[0], sockname[1]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def qr_svg(text: str) -> str:
    """Return an inline SVG QR code of text (generated on the box)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage,
                        box_size=8, border=2)
    return image.to_string(encoding="unicode")


