"""What every staff page shares: context, form reading, same-origin checks."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from daemon import pairing
from daemon.errors import InputError
from daemon.runtime import Stallbox
from daemon.web.keys import CSRF_KEY, STALLBOX, TABLET_KEY

_LOG = logging.getLogger(__name__)
TOKEN_COOKIE = "stallbox_token"
MAX_FORM_FIELD = 200

# Printer states in a cashier's words: (label, badge level, what to do).
# Unknown states still render: their name becomes the label, level "warn".
PRINTER_WORDS: dict[str, tuple[str, str, str]] = {
    "none": ("No printer set up", "off",
             "Receipts are kept and can be printed once a printer is set up."),
    "ready": ("Printer ready", "ok", ""),
    "idle": ("Printer ready", "ok", ""),
    "printing": ("Printing", "ok", ""),
    "starting": ("Printer starting", "off", "Wait a moment."),
    "offline": ("Printer offline", "bad",
                "Check that the printer is switched on and its light is green."),
    "paper_out": ("Printer out of paper", "bad",
                  "Put in a new paper roll and close the cover."),
    "paper_end": ("Printer out of paper", "bad",
                  "Put in a new paper roll and close the cover."),
    "paper_near_end": ("Paper running low", "warn",
                       "Have a new paper roll ready."),
    "cover_open": ("Printer cover open", "bad", "Close the printer cover."),
    "stalled": ("Printer not answering", "bad",
                "Switch the printer off and on again."),
    "absent": ("Printer not connected: waiting for device", "bad",
               "Check the printer's cable and that it is switched on."
               " It is used as soon as it is back."),
    "disconnected": ("Printer not connected", "bad",
                     "Check the printer's cable and that it is switched on."),
    "misconfigured": ("Printer link misconfigured", "bad",
                      "Ask the installer to check the baud rate and parity."),
    "error": ("Printer error", "bad", "Switch the printer off and on again."),
}


def describe_printer(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn the printer entry of the health document into words for people."""
    state = str(raw.get("state") or "unknown")
    label, level, action = PRINTER_WORDS.get(
        state, (state.replace("_", " ").capitalize(), "warn", ""))
    known = {"state", "reason", "action"}
    details = [(str(key), str(value)) for key, value in raw.items()
               if key not in known and value not in (None, "")]
    return {"state": state, "label": label, "level": level,
            "reason": str(raw.get("reason") or ""),
            "action": str(raw.get("action") or action), "details": details}


def printer_of(box: Stallbox) -> dict[str, Any]:
    """Return the described printer state, or 'unknown' before the journal opens."""
    try:
        raw = box.healthz().get("printer")
    except AttributeError:  # the journal is not open yet (start-up failed)
        raw = None
    return describe_printer(raw if isinstance(raw, dict) else {"state": "unknown"})


def base_context(request: web.Request, **extra: Any) -> dict[str, Any]:
    """Return what every page template needs."""
    box = request.app[STALLBOX]
    currency = box.config.stall.currency
    paired = request.get(TABLET_KEY) is not None
    return {"stall_name": box.config.stall.name, "paired": paired,
            "here": request.path,
            "tablet": request.get(TABLET_KEY, ""),
            "csrf": request.get(CSRF_KEY, ""),  # in every POST form (#6)
            "printer": printer_of(box) if paired else None,
            "money": lambda minor: f"{currency.format(minor)} {currency.symbol}",
            "local_time": local_time, **extra}


def render(request: web.Request, template: str, status: int = 200,
           **extra: Any) -> web.Response:
    """Render a page template with the shared context."""
    context = base_context(request, **extra)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def local_time(iso_utc: str) -> str:
    """Show a journal UTC timestamp in the box's local time, as on the receipt."""
    try:
        moment = datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    except ValueError:
        return iso_utc
    return moment.astimezone().strftime("%d.%m.%Y %H:%M")


async def form_fields(request: web.Request, *names: str) -> dict[str, str]:
    """Read named text fields of a posted form; refuse over-long ones."""
    form = await request.post()
    out = {}
    for name in names:
        value = form.get(name, "")
        if not isinstance(value, str):
            raise InputError(f"{name} must be text", field=name)
        if len(value) > MAX_FORM_FIELD:
            raise InputError(f"{name} is too long (at most {MAX_FORM_FIELD}"
                             " characters)", field=name)
        out[name] = value
    return out


def check_same_origin(request: web.Request) -> None:
    """Refuse a form post whose Origin or Referer names another site.

    The token cookie is SameSite=Strict already; this is the second lock for
    browsers or embedded views that do not honour SameSite.
    """
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return
    try:
        url = URL(source)
        same = (url.host, url.port) == (request.url.host, request.url.port)
    except ValueError:
        same = False
    if not same:
        _LOG.warning("refused a cross-site form post to %s", request.path)
        raise web.HTTPForbidden(
            reason="This form came from another page. Open the till again.")


def tablet_key(request: web.Request) -> str:
    """Return a key unique to the paired tablet (names may repeat, tokens do not)."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    return pairing.token_hash(token or request.cookies.get(TOKEN_COOKIE, ""))
