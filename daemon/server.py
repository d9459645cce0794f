"""Run the daemon: bind HTTP, open the control socket, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.config import Config
from daemon.control import decode_file, serve_control, state_lock
from daemon.lan.cli import control_ops as lan_control_ops
from daemon.notify import Notifier
from daemon.setup_slip import control_ops as slip_control_ops

if TYPE_CHECKING:
    from daemon.discovery import Announcer
from daemon.live.cli import control_ops as live_control_ops
from daemon.runtime import Stallbox, import_summary
from daemon.web.app import create_app
from daemon.web.keys import STALLBOX
from sync.cli import control_ops as sync_control_ops

_LOG = logging.getLogger(__name__)
SHUTDOWN_TIMEOUT_S = 10.0
Ready = Callable[[Stallbox, str], Awaitable[None]]
ControlOp = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def control_ops(box: Stallbox) -> dict[str, ControlOp]:
    """The requests CLI commands may send to the running daemon."""

    async def pair(_: dict[str, Any]) -> dict[str, Any]:
        return {"code": await box.issue_pairing_code()}

    async def import_catalog(request: dict[str, Any]) -> dict[str, Any]:
        return await import_summary(
            box, decode_file(str(request.get("data", ""))),
            skip_invalid=bool(request.get("skip_invalid")),
            include_inactive=bool(request.get("include_inactive")))

    return {"pair": pair, "import_catalog": import_catalog,
            **sync_control_ops(box), **live_control_ops(box),
            **slip_control_ops(box),
            **lan_control_ops(box)}


def _url(config: Config, port: int) -> str:
    scheme = "https" if config.tls is not None else "http"
    host = config.host
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"{scheme}://{host}:{port}/"


async def serve(config: Config, on_ready: Ready | None = None) -> None:
    """Serve until SIGTERM or SIGINT; the caller holds no locks."""
    stop = _stop_on_signals()
    notifier = Notifier()
    try:
        await _serve(config, on_ready, stop, notifier)
    finally:
        await notifier.close()
    _LOG.info("stopped")


async def _serve(config: Config, on_ready: Ready | None, stop: asyncio.Event,
                 notifier: Notifier) -> None:
    # The installer's certificate, if any; a bad file stops here, before binding.
    tls = config.tls.context() if config.tls is not None else None
    with state_lock(config.state_dir):
        app = create_app(config)
        app.on_cleanup.insert(0, _journal_shutdown)
        # No access log: a line per request costs a tenth of a sale's time on a
        # Pi, and request paths are in the journal anyway.
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        box = app[STALLBOX]
        control = await serve_control(config.state_dir, control_ops(box))
        try:
            site = web.TCPSite(runner, config.host, config.port, ssl_context=tls)
            await site.start()
            port = runner.addresses[0][1]
            box.bound_port = port
            url = _url(config, port)
            _LOG.info("serving on %s (journal seq %d)", url, box.journal.head_seq)
            notifier.ready(f"serving on {url}, journal seq {box.journal.head_seq}")
            _settle_gc()
            notifier.start_watchdog()
            announcer = await _start_discovery(config, port)
            if on_ready is not None:
                await on_ready(box, url)
            await stop.wait()
            if announcer is not None:
                await announcer.stop()
            # Closing the listener refuses new connections; requests already
            # in flight finish (up to SHUTDOWN_TIMEOUT_S) and may still sell.
            # Closed before STOPPING=1 is sent, so whoever sees that sees the
            # door shut (test_notify raced it on a loaded machine).
            await site.stop()
            _LOG.info("stopping: refusing new connections, finishing in-flight work")
            notifier.stopping("stopping: finishing in-flight sales and printing")
        finally:
            control.close()
            await runner.cleanup()


def _settle_gc() -> None:
    """Put the collector's default threshold back after daemon.cli's start-up
    one, and freeze what start-up built."""
    # Imported here: importing this module must leave the collector alone.
    from daemon import _startup

    _startup.settle()
    _startup.freeze_long_lived()


async def _start_discovery(config: Config, port: int) -> Announcer | None:
    """Announce the pages by mDNS if configured and reachable off this box."""
    settings = config.discovery
    if not settings.enabled or config.host in ("127.0.0.1", "::1", "localhost"):
        return None
    # Imported here: zeroconf costs start-up time when discovery is off.
    from daemon import __version__
    from daemon.discovery import Advert, Announcer, device_suffix
    from daemon.keys.device import DeviceIdentity

    identity = await asyncio.to_thread(DeviceIdentity.load_or_create, config.state_dir)
    advert = Advert(name=settings.name or config.stall.name, port=port,
                    stall_id=config.stall.stall_id, version=__version__,
                    host=socket.gethostname().split(".")[0] or "stallbox",
                    suffix=device_suffix(identity.public_bytes))
    announcer = Announcer(advert, settings.interfaces)
    announcer.start()
    return announcer


async def _journal_shutdown(app: web.Application) -> None:
    """Finish the job on the printer's wire, then journal the orderly stop.

    Runs after in-flight requests finished and before the journal closes.
    """
    box = app[STALLBOX]
    box.accepting = False
    if box.printer is not None:
        await box.printer.stop()
    uptime_s = int(time.monotonic() - box.health.started_monotonic)
    event = await box.journal.append("daemon.stopped", {"uptime_s": uptime_s})
    _LOG.info("shutdown journaled at seq %d", event.seq)


def _stop_on_signals() -> asyncio.Event:
    """Return an event SIGTERM and SIGINT set, installed before anything binds."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
