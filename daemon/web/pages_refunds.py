"""Refunds from the sale page: whole sale, per line and per unit.

The form posts to ``/sales/{id}/refunds`` and the page calls the same refund
flow as the API (``api_billing.refund_sale``), idempotent by a client_ref made
when the page was drawn, so a double tap or a resubmitted form refunds once.
When another tablet refunded the same units first the flow answers 409; the
page says so in plain words and shows what is left. A card part goes to the
terminal, or is refused with the service's own words while it cannot.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from daemon.errors import ConflictError, InputError, RetryLaterError
from daemon.sales.refunds import RefundRequest, list_refunds, refunded_units
from daemon.web.api_billing import refund_sale
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import MAX_FORM_FIELD, check_same_origin, form_fields
from daemon.web.pages_sales import render_sale
from daemon.web.till_order import parse_units

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_REASON = 200
KIND_WORDS = {"goods": "", "fee": "Fee", "deposit": "Deposit", "credit": "Credit",
              "deposit-return": "Deposit return", "contribution": "Contribution"}
CONFLICT_WORDS = ("Some of these items were refunded a moment ago, perhaps from "
                  "another till, so nothing was refunded now. The list below "
                  "shows what is left: check it with the customer and refund "
                  "again if needed.")


@dataclass(frozen=True, slots=True)
class RefundRow:
    """One sold line as the refund form shows it."""

    index: int
    name: str
    kind: str
    qty: int
    refunded: int
    paid_minor: int

    @property
    def left(self) -> int:
        """Return the units not yet refunded."""
        return abs(self.qty) - self.refunded


async def refund_context(box: Any, sale: dict[str, Any]) -> dict[str, Any]:
    """Return the refunds made, the rows left to refund and a fresh client_ref."""
    sale_id = sale["id"]
    lines = sale["lines"]

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[int]]:
        return list_refunds(conn, sale_id), refunded_units(conn, sale_id, len(lines))

    refunds, done = await box.reader.run(read)
    rows = [RefundRow(i, ln["name"], KIND_WORDS.get(ln.get("kind", "goods"), ""),
                      ln["qty"], done[i], ln.get("paid_minor", ln["amount_minor"]))
            for i, ln in enumerate(lines)]
    refunded = sum(r.get("total_minor", 0) for r in refunds)
    return {"refunds": refunds, "refund_rows": rows, "refunded_minor": refunded,
            "refundable": sale.get("status") == "completed"
            and any(row.left for row in rows),
            "refund_ref": "refund-" + secrets.token_urlsafe(12)}


def refund_units(form: MultiDictProxy[Any], rows: list[RefundRow]) -> dict[int, int]:
    """Read the units typed per line (fields qty-N); refuse more than is left."""
    units = {}
    for row in rows:
        raw = form.get(f"qty-{row.index}", "")
        if not isinstance(raw, str) or len(raw) > MAX_FORM_FIELD:
            raise InputError(f"units for {row.name[:40]}: type a whole number",
                             field=f"qty-{row.index}")
        qty = parse_units(raw, f"units for line {row.index + 1}")
        if qty > abs(row.qty):
            raise InputError(f"{row.name[:60]}: only {abs(row.qty)} sold, not "
                             f"{qty}", field=f"qty-{row.index}")
        if qty > row.left:  # the page showed more: refunded since it was drawn
            raise ConflictError(f"{row.name[:60]}: {row.left} unit(s) left to "
                                f"refund, not {qty}")
        if qty:
            units[row.index] = qty
    return units


async def read_refund(request: web.Request,
                      rows: list[RefundRow]) -> RefundRequest:
    """Return the refund the form asks for: everything left, or the units typed."""
    fields = await form_fields(request, "client_ref", "reason", "scope")
    if not 8 <= len(fields["client_ref"]) <= 64:
        raise InputError("reload the sale page and refund again", field="client_ref")
    units: dict[int, int] = {}
    if fields["scope"] != "all":
        units = refund_units(await request.post(), rows)
        if not units:
            raise InputError("type how many units of which line go back, or tap "
                             "Refund everything left", field="qty")
    reason = " ".join(fields["reason"].split())[:MAX_REASON]
    return RefundRequest(fields["client_ref"], tuple(units.items()), reason,
                         request[TABLET_KEY])


@routes.post("/sales/{id}/refunds")
async def refund_submit(request: web.Request) -> web.Response:
    check_same_origin(request)
    box = request.app[STALLBOX]
    sale = await box.sale(request.match_info["id"][:64])
    rows = (await refund_context(box, sale))["refund_rows"]
    try:
        asked = await read_refund(request, rows)
        created, refund = await refund_sale(box, sale["id"], asked)
    except ConflictError as err:
        return await render_sale(request, sale["id"], status=409,
                                 refund_error=f"{CONFLICT_WORDS} ({err})")
    except (InputError, RetryLaterError) as err:
        status = 503 if isinstance(err, RetryLaterError) else 422
        return await render_sale(request, sale["id"], status=status,
                                 refund_error=str(err))
    _LOG.info("refund %s of sale %s from the sale page (new: %s)",
              refund.get("id"), sale["id"], created)
    raise web.HTTPSeeOther(f"/sales/{sale['id']}?refunded={refund.get('id', '')}"
                           "#refunds")
