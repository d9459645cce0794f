"""Run the daemon: bind HTTP, open the control socket, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.config import Config
from daemon.control import decode_file, serve_control, state_lock
from daemon.runtime import Stallbox, import_summary
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX

_LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 10.0
Ready = Callable[[Stallbox, str], Awaitable[None]]


def control_ops(box: Stallbox) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
    """The requests CLI commands may send to the running daemon."""

    async def pair(_: dict[str, Any]) -> dict[str, Any]:
        return {"code": await box.issue_pairing_code()}

    async def import_catalog(request: dict[str, Any]) -> dict[str, Any]:
        return await import_summary(
            box, decode_file(str(request.get("data", ""))),
            skip_invalid=bool(request.get("skip_invalid")),
            include_inactive=bool(request.get("include_inactive")))

    return {"pair": pair, "import_catalog": import_catalog}


def _url(config: Config, port: int) -> str:
    host = config.host
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/"


async def serve(config: Config, on_ready: Ready | None = None) -> None:
    """Serve until SIGTERM or SIGINT; the caller holds no locks."""
    stop = _stop_on_signals()
    with state_lock(config.state_dir):
        app = create_app(config)
        # No access log: a line per request costs a tenth of a sale's time on a
        # Pi, and request paths are in the journal anyway.
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        box = app[STALLBOX]
        control = await serve_control(config.state_dir, control_ops(box))
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
            port = runner.addresses[0][1]
            url = _url(config, port)
            _LOG.info("serving on %s (journal seq %d)", url, box.journal.head_seq)
            if on_ready is not None:
                await on_ready(box, url)
            await stop.wait()
            _LOG.info("stopping: refusing new sales, finishing in-flight work")
            box.accepting = False
        finally:
            control.close()
            await runner.cleanup()
    _LOG.info("stopped")


def _stop_on_signals() -> asyncio.Event:
    """Return an event SIGTERM and SIGINT set, installed before anything binds."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
