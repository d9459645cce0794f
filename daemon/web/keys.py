"""Typed application keys shared by the web modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from daemon.runtime import Stallbox

STALLBOX: web.AppKey[Stallbox] = web.AppKey("stallbox")
# Routes a client may reach without a token, by their resource's canonical path.
PUBLIC_PATHS = frozenset({"/healthz", "/pair", "/api/v1/pair", "/static",
                          "/methodology",  # the receipt's carbon method, for anyone
                          "/verify", "/api/v1/receipts/verify",
                          # A streaming tool is no paired tablet: each webhook is
                          # authenticated by its HMAC signature under the
                          # integration's secret instead (daemon.live.signature).
                          "/api/v1/live/events"})
TABLET_KEY: web.RequestKey[str] = web.RequestKey("tablet")
# The session's form token (daemon.web.authz); every POST form carries it.
CSRF_KEY: web.RequestKey[str] = web.RequestKey("csrf")
