"""One authorisation layer for pages and API: roles per route, CSRF, headers.

Every route needs one of three roles. Public routes are ``PUBLIC_PATHS``
(pairing, /verify, /healthz, static files, signed webhooks); every other route
is listed in ``ROUTE_ROLES`` as cashier (any paired tablet) or manager (a
tablet where the manager PIN was entered in the last few minutes). A route
missing from the table needs the manager, so a new route is closed until it is
classified; a test fails for each unclassified route.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from daemon.errors import ConflictError, InputError, RateLimitedError
from daemon.lan.sessions import ACTING_SESSION, TabletSession
from daemon.web.keys import CSRF_KEY, PUBLIC_PATHS, STALLBOX, TABLET_KEY
from daemon.web.pages_common import TOKEN_COOKIE, render
from daemon.web.problems import problem

_LOG = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
PIN_FIELD = "manager_pin"
SESSION_KEY: web.RequestKey[TabletSession] = web.RequestKey("tablet_session")
# No inline script or style anywhere: every page loads /static files only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
       " connect-src 'self'; object-src 'none'; base-uri 'none';"
       " frame-ancestors 'none'; form-action 'self'")


class Role(enum.IntEnum):
    """Who may call a route; a higher role may do what a lower one may."""

    PUBLIC = 0
    CASHIER = 1
    MANAGER = 2


def _table(role: Role, text: str) -> dict[tuple[str, str], Role]:
    pairs = (line.split() for line in text.strip().splitlines())
    return {(method, path): role for method, path in pairs}


ROUTE_ROLES: dict[tuple[str, str], Role] = {
    **_table(Role.CASHIER, """
        GET /
        GET /till
        POST /till/cart
        POST /till/checkout
        GET /till/change/{id}
        POST /till/card
        GET /till/card/{id}
        POST /till/card/{id}/cancel
        POST /till/card/{id}/retry
        GET /sales
        GET /sales/{id}
        POST /sales/{id}/reprint
        POST /sales/{id}/email
        GET /printer
        GET /shifts
        GET /shifts/{seq}
        GET /gift-cards
        POST /gift-cards
        POST /api/v1/gift-cards/balance
        GET /sync
        GET /devices
        GET /clock
        GET /display
        GET /display/events
        GET /display/creative/{name}
        GET /display/preview
        GET /elevate
        POST /elevate
        POST /elevate/end
        GET /metrics
        GET /api/v1/openapi.json
        GET /api/v1/products
        POST /api/v1/sales
        GET /api/v1/sales
        GET /api/v1/sales/{id}
        GET /api/v1/sales/{id}/receipt
        POST /api/v1/sales/{id}/reprint
        POST /api/v1/sales/{id}/email
        GET /api/v1/sales/{id}/email
        POST /api/v1/sales/{id}/pay-cash
        GET /api/v1/sales/{id}/refunds
        GET /api/v1/refunds/{id}
        POST /api/v1/refunds/{id}/reprint
        GET /api/v1/printer
        GET /api/v1/sync
        GET /api/v1/shifts/current
        GET /api/v1/shifts
        GET /api/v1/shifts/{seq}
        POST /api/v1/payments
        GET /api/v1/payments
        GET /api/v1/payments/{id}
        GET /api/v1/payments/{id}/events
        POST /api/v1/payments/{id}/cancel
        GET /api/v1/terminal
        GET /api/v1/live/streams
        GET /api/v1/display/stats
        POST /api/v1/elevate
        DELETE /api/v1/elevate
    """),
    **_table(Role.MANAGER, """
        POST /api/v1/catalog/import
        POST /api/v1/sales/{id}/refunds
        POST /sales/{id}/refunds
        POST /api/v1/payments/{id}/cancel-sale
        POST /till/card/{id}/cancel-sale
        POST /api/v1/payments/{id}/resolve
        POST /till/card/{id}/resolve
        POST /api/v1/shifts/close
        POST /shifts/close
        GET /api/v1/gift-cards
        POST /api/v1/days/close
        POST /api/v1/terminal/end-of-day
        POST /devices/end-of-day
        POST /api/v1/sync/retry
        POST /sync/now
        POST /clock
        GET /display/manage
        POST /display/manage/creatives
        POST /display/manage/creatives/{id}/retire
        GET /tablets
        POST /tablets/code
        POST /tablets/{seq}/revoke
        GET /api/v1/tablets
        POST /api/v1/tablets/{seq}/revoke
        POST /api/v1/pairing-codes
    """),
}
_warned: set[tuple[str, str]] = set()


def route_key(request: web.Request) -> tuple[str, str]:
    """Return (method, canonical path) of the matched route; HEAD counts as GET."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return ("GET" if request.method == "HEAD" else request.method), path


def required_role(request: web.Request) -> Role:
    """Return the role a request's route needs (unlisted routes: the manager)."""
    method, path = route_key(request)
    if path in PUBLIC_PATHS:
        return Role.PUBLIC
    if request.match_info.http_exception is not None:
        return Role.CASHIER  # 404 and 405 only for paired tablets, as before
    role = ROUTE_ROLES.get((method, path))
    if role is None:
        if (method, path) not in _warned:
            _warned.add((method, path))
            _LOG.warning("route %s %s has no role in daemon.web.authz; "
                         "only a manager may use it", method, path)
        return Role.MANAGER
    return role


def csrf_token(token: str) -> str:
    """Return the form token for a tablet session: an HMAC keyed by its token."""
    return hmac.new(token.encode("utf-8"), b"stallbox csrf v1",
                    hashlib.sha256).hexdigest()[:32]


def credential(request: web.Request) -> tuple[str, bool]:
    """Return the session token and whether it came from the (ambient) cookie."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip(), False
    return request.cookies.get(TOKEN_COOKIE, ""), True


def is_api(request: web.Request) -> bool:
    """Return whether the request is for the JSON API (problem answers)."""
    return request.path.startswith(("/api/", "/healthz", "/metrics"))


@web.middleware
async def auth_middleware(request: web.Request,
                          handler: Handler) -> web.StreamResponse:
    """Let a request through only with the role its route needs."""
    role = required_role(request)
    if role is Role.PUBLIC:
        return await handler(request)
    token, by_cookie = credential(request)
    session = request.app[STALLBOX].lan.session_for(token) if token else None
    if session is None:
        if is_api(request):
            return problem(401, "Unauthorized",
                           "pair this device first: POST /api/v1/pair")
        raise web.HTTPSeeOther("/pair")
    request[TABLET_KEY] = session.name
    request[SESSION_KEY] = session
    if by_cookie or not is_api(request):  # forms need it; a bearer API call not
        request[CSRF_KEY] = csrf_token(token)
        if by_cookie and request.method not in SAFE_METHODS:
            await _check_csrf(request, request[CSRF_KEY])
    if role is Role.MANAGER and not session.elevated():
        refused = await _manager_wanted(request, session)
        if refused is not None:
            return refused
    ACTING_SESSION.set(session.digest)
    return await handler(request)


async def _check_csrf(request: web.Request, expected: str) -> None:
    """Refuse a cookie-authenticated change without this session's form token."""
    sent: object = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type == "application/x-www-form-urlencoded":
        sent = (await request.post()).get(CSRF_FIELD, "")
    elif not sent and request.content_type == "multipart/form-data":
        sent = request.query.get(CSRF_FIELD, "")  # reading the body would use it up
    if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        _LOG.warning("refused a form post without a valid CSRF token to %s",
                     request.path)
        raise web.HTTPForbidden(reason="This page is out of date or came from "
                                "another site. Open it again and retry.")


async def _manager_wanted(request: web.Request,
                          session: TabletSession) -> web.StreamResponse | None:
    """Elevate with a PIN sent along with the form, or ask for one."""
    if is_api(request):
        return problem(403, "Manager PIN required",
                       "this needs the manager: POST /api/v1/elevate with the PIN")
    if request.method in SAFE_METHODS:
        raise web.HTTPSeeOther("/elevate?next=" + quote(request.path_qs, safe="/"))
    fields = await replayable_fields(request)
    pin = fields.pop(PIN_FIELD, "") if fields is not None else ""
    if not pin:
        return pin_page(request, fields, status=403)
    try:
        await request.app[STALLBOX].lan.elevate(session, pin)
    except (InputError, ConflictError, RateLimitedError) as err:
        return pin_page(request, fields, status=pin_status(err), error=str(err))
    return None


def pin_status(err: Exception) -> int:
    """Return the status of a refused PIN: 429 limited, 409 none set, 422 wrong."""
    if isinstance(err, RateLimitedError):
        return 429
    return 409 if isinstance(err, ConflictError) else 422


async def replayable_fields(request: web.Request) -> dict[str, str] | None:
    """Return a posted form's text fields to post again with the PIN, if plain."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    form = await request.post()
    return {key: value for key, value in form.items()
            if isinstance(value, str) and key != CSRF_FIELD}


def pin_page(request: web.Request, fields: dict[str, str] | None, *,
             status: int, error: str = "") -> web.Response:
    """Render the manager PIN form; it posts the original form again, or returns."""
    if fields is None:
        action, fields = "/elevate", {"next": local_path(
            request.headers.get("Referer", ""), request)}
    else:
        action = request.path
    minutes = request.app[STALLBOX].config.sessions.manager_elevation_s // 60
    return render(request, "elevate.html", status=status, action=action,
                  fields=sorted(fields.items()), error=error,
                  title="Manager PIN needed", elevation_min=max(minutes, 1))


def local_path(target: str, request: web.Request) -> str:
    """Return target if it is a path on this box, else the till."""
    parts = urlsplit(target)
    same_host = not parts.netloc or parts.netloc == request.host
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if same_host and path.startswith("/") and not path.startswith("//") \
            and "\\" not in path:
        return path
    return "/till"


async def security_headers(request: web.Request,
                           response: web.StreamResponse) -> None:
    """Add CSP and friends to every answer, static files and errors included."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
