"""Refunds and shifts under /api/v1: bodies checked, work in one transaction.

- ``POST /api/v1/sales/{id}/refunds`` ``{"client_ref", "lines"?: [{"line",
  "qty"}], "reason"?}``: 201 with the refund (200 for a repeated client_ref);
  without ``lines`` everything not yet refunded. 409 when the units are gone
  (another tablet refunded them first). A card part goes back through the
  terminal: 202 with ``status`` ``pending`` until it answers (#3).
- ``GET /api/v1/sales/{id}/refunds``: the sale's refunds; ``GET
  /api/v1/refunds/{id}``: one, with its card part; ``POST
  /api/v1/refunds/{id}/reprint``: its slip again, marked REPRINT.
- ``GET /api/v1/shifts/current``: the open shift's X report.
- ``POST /api/v1/shifts/close`` ``{"client_ref", "counted_cash_minor",
  "opening_float_minor"?}``: 201 with the Z report, journaled as
  ``shift.closed``; 409 when nothing happened since the last close. With a
  card terminal, its end-of-day runs first and the Z report's ``terminal``
  says how it compared (or why it could not run).
- ``GET /api/v1/shifts``: closed shifts, newest first; ``GET
  /api/v1/shifts/{seq}``: one Z report.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from daemon.errors import InputError, RetryLaterError, StallboxError
from daemon.runtime import Stallbox
from daemon.sales.refunds import (
    RefundRequest,
    create_refund,
    list_refunds,
    load_refund,
    queue_slip_reprint,
)
from daemon.sales.service import MAX_QTY
from daemon.sales.shifts import (
    ShiftClose,
    close_shift,
    closed_shift,
    closed_shifts,
    needs_close,
    shift_report,
)
from daemon.web.api import read_json
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.schema import Arr, Int, Obj, Str

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
END_OF_DAY_TIMEOUT_S = 90.0  # a terminal's batch close may take a minute
EOD_KEYS = ("terminal", "seq", "ts", "total_minor", "terminal_totals",
            "journal_totals", "differences", "unknown", "intents")
MAX_AMOUNT = 10**12
MAX_SEQ = 2**62
REFUND_BODY = Obj({
    "client_ref": Str(8, 64),
    "lines": Arr(Obj({"line": Int(0, 10_000), "qty": Int(1, MAX_QTY)}), 1, 200),
    "reason": Str(0, 200),
}, optional=frozenset({"lines", "reason"}))
SHIFT_CLOSE_BODY = Obj({
    "client_ref": Str(8, 64),
    "counted_cash_minor": Int(0, MAX_AMOUNT),
    "opening_float_minor": Int(0, MAX_AMOUNT),
}, optional=frozenset({"opening_float_minor"}))


def check_accepting(box: Stallbox) -> None:
    """Refuse new journal work while the daemon shuts down or the journal is bad."""
    if not box.accepting:
        raise RetryLaterError("the daemon is not taking new work right now")


def refund_request(body: dict[str, object], tablet: str) -> RefundRequest:
    """Return the refund a checked REFUND_BODY asks for; a line only once."""
    units: dict[int, int] = {}
    for i, line in enumerate(body.get("lines", [])):  # type: ignore[arg-type]
        if line["line"] in units:
            raise InputError(f"line {line['line']} is named twice",
                             field=f"lines[{i}].line")
        units[line["line"]] = line["qty"]
    return RefundRequest(str(body["client_ref"]), tuple(units.items()),
                         str(body.get("reason", "")), tablet)


async def refund_sale(box: Stallbox, sale_id: str,
                      request: RefundRequest) -> tuple[bool, dict[str, Any]]:
    """Journal a refund (a card part through the terminal); return (created, it)."""
    check_accepting(box)
    if box.terminal is not None:
        outcome = await box.terminal.refund(sale_id, request)
    else:
        outcome = await box.journal.transact(
            lambda tx: create_refund(tx, sale_id, request))
        if outcome.created and box.printer is not None:
            box.printer.wake()
    return outcome.created, outcome.refund


@routes.post("/api/v1/sales/{id}/refunds")
async def post_refund(request: web.Request) -> web.Response:
    body = await read_json(request, REFUND_BODY)
    created, refund = await refund_sale(
        request.app[STALLBOX], request.match_info["id"][:64],
        refund_request(body, request[TABLET_KEY]))
    pending = refund.get("status") == "pending"
    return web.json_response(refund, status=202 if pending else
                             201 if created else 200)


@routes.get("/api/v1/refunds/{id}")
async def get_refund(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    refund_id = request.match_info["id"][:64]
    refund = await box.reader.run(lambda c: load_refund(c, refund_id))
    card = refund.get("card")
    if card and box.terminal is not None:
        refund["card_refund"] = await box.terminal.intent(card["intent_id"])
    return web.json_response(refund)


@routes.post("/api/v1/refunds/{id}/reprint")
async def reprint_refund(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    check_accepting(box)
    refund_id = request.match_info["id"][:64]
    job_id = await box.journal.transact(lambda tx: queue_slip_reprint(tx, refund_id))
    if box.printer is not None:
        box.printer.wake()
    return web.json_response({"job_id": job_id, "reprint": True}, status=202)


@routes.get("/api/v1/sales/{id}/refunds")
async def get_refunds(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    sale_id = request.match_info["id"][:64]
    await box.sale(sale_id)  # 404 for an unknown sale
    items = await box.reader.run(lambda c: list_refunds(c, sale_id))
    return web.json_response({"items": items})


@routes.get("/api/v1/shifts/current")
async def current_shift(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    code = box.config.stall.currency.code
    return web.json_response(await box.reader.run(lambda c: shift_report(c, code)))


async def close(box: Stallbox, request: ShiftClose) -> dict[str, Any]:
    """Close the open shift and return its Z report (created says if new)."""
    check_accepting(box)
    code = box.config.stall.currency.code
    terminal = await terminal_end_of_day(box, request)
    # The close also ends the other tablets' tokens ([pairing], #6).
    report = await box.journal.transact(box.lan.with_shift_close(
        lambda tx: close_shift(tx, request, code, terminal)))
    _LOG.info("shift closed at seq %s", report.get("seq"))
    return report


async def terminal_end_of_day(box: Stallbox,
                              request: ShiftClose) -> dict[str, Any] | None:
    """Run the terminal's end-of-day for a close; never let it block the close."""
    service = box.terminal
    if service is None or not await box.reader.run(
            lambda c: needs_close(c, request.client_ref)):
        return None
    try:
        async with asyncio.timeout(END_OF_DAY_TIMEOUT_S):
            eod = await service.end_of_day(f"shift close on {request.tablet}")
    except (StallboxError, TimeoutError) as err:
        _LOG.warning("shift closes without the terminal's end-of-day: %s", err)
        return {"state": "not run", "terminal": service.name,
                "reason": str(err) or "no answer in time",
                "next_step": "Run end-of-day on the devices page (or on the "
                             "terminal) once it answers, and compare its slip."}
    return {"state": "balanced" if eod["balanced"] else "differences",
            **{key: eod[key] for key in EOD_KEYS}}


@routes.post("/api/v1/shifts/close")
async def post_close(request: web.Request) -> web.Response:
    body = await read_json(request, SHIFT_CLOSE_BODY)
    report = await close(request.app[STALLBOX], ShiftClose(
        body["client_ref"], body["counted_cash_minor"],
        body.get("opening_float_minor", 0), request[TABLET_KEY]))
    return web.json_response(report, status=201 if report.pop("created") else 200)


@routes.get("/api/v1/shifts")
async def list_shifts(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    return web.json_response({"items": await box.reader.run(closed_shifts)})


def parse_seq(text: str) -> int:
    """Return a journal seq from a path, or raise InputError naming it."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:20]) <= MAX_SEQ:
        raise InputError("seq must be a positive whole number", field="seq")
    return int(text)


@routes.get("/api/v1/shifts/{seq}")
async def get_shift(request: web.Request) -> web.Response:
    seq = parse_seq(request.match_info["seq"])
    box = request.app[STALLBOX]
    return web.json_response(await box.reader.run(lambda c: closed_shift(c, seq)))
