"""The sync status page: state, backlog, rate, last error, and "Sync now".

It reads the same status document as ``GET /api/v1/sync`` (``box.sync`` or,
without a configured sync, the journal's backlog) and its button does what
``POST /api/v1/sync/retry`` does: unpark after a refusal and start a round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from daemon.web.api_sync import RETRY_WAIT_S
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import check_same_origin, local_time, render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
REFRESH_S = 5  # page reload while a round runs, without JavaScript
# Sync states in a manager's words: (label, badge level, what it means).
SYNC_WORDS: dict[str, tuple[str, str, str]] = {
    "disabled": ("Sync not set up", "off",
                 "Sales are kept on this box. Ask the installer to set [sync] url "
                 "in the config to send them to the billing service."),
    "starting": ("Starting", "off", "Sync starts in a moment."),
    "idle": ("Up to date", "ok", "Everything the receiver acknowledged is safe "
             "in the cloud; new sales follow on the next round."),
    "syncing": ("Sending", "ok", "Sales are on their way to the billing service."),
    "backoff": ("Waiting to retry", "warn",
                "The last try failed for a passing reason (network or a busy "
                "receiver). Sync retries by itself; selling goes on."),
    "parked": ("Stopped: needs a person", "bad",
               "The receiver refused the sales for the reason below. Fix that "
               "(or ask the billing service), then tap Retry."),
    "stopped": ("Stopped", "off", "The daemon is shutting down."),
}


def describe_sync(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn the sync status document into words and figures for the page."""
    state = str(raw.get("state") or "unknown")
    label, level, meaning = SYNC_WORDS.get(
        state, (state.replace("_", " ").capitalize(), "warn", ""))
    return {"state": state, "label": label, "level": level, "meaning": meaning,
            "backlog": int(raw.get("backlog") or 0),
            "acked_seq": int(raw.get("acked_seq") or 0),
            "rate_eps": raw.get("rate_eps") or 0, "eta_s": raw.get("eta_s"),
            "bytes_remaining": int(raw.get("bytes_remaining") or 0),
            "last_success": _when(raw.get("last_success")),
            "next_attempt": _when(raw.get("next_attempt")),
            "last_error": str(raw.get("last_error") or ""),
            "rounds": int(raw.get("rounds") or 0)}


def _when(value: Any) -> str:
    return local_time(str(value)) if value else ""


@routes.get("/sync")
async def sync_page(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    status = describe_sync(box.healthz()["sync"])
    asked = request.query.get("asked", "") == "1"
    return render(request, "sync.html", sync=status, configured=box.sync is not None,
                  asked=asked, refresh_s=REFRESH_S)


@routes.post("/sync/now")
async def sync_now(request: web.Request) -> web.Response:
    check_same_origin(request)
    box = request.app[STALLBOX]
    if box.sync is None:
        raise web.HTTPSeeOther("/sync")
    round_done = box.sync.retry()  # unparks, and joins a running round
    try:
        async with asyncio.timeout(RETRY_WAIT_S):
            await asyncio.shield(round_done)
    except TimeoutError:
        pass  # still sending: the page shows the state and reloads
    _LOG.info("sync asked for from the sync page")
    raise web.HTTPSeeOther("/sync?asked=1")
