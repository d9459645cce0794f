"""The sales list, one sale with its receipt as printed, and explicit reprints."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from daemon.errors import InputError
from daemon.sales.service import TENDER_LABELS
from daemon.web.keys import STALLBOX
from daemon.web.pages_common import check_same_origin, render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
SALES_PER_PAGE = 25
MAX_SEQ = 2**62
JOB_WORDS = {"queued": "Waiting for the printer", "printing": "Printing",
             "printed": "Printed", "interrupted": "Cut off (reprint queued)",
             "failed": "Failed"}


def parse_before_seq(raw: str | None) -> int | None:
    """Return the page cursor from the query, or None for the newest page."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw[:20]) <= MAX_SEQ:
        raise InputError("before_seq must be a positive whole number",
                         field="before_seq")
    return int(raw)


@routes.get("/sales")
async def sales_list(request: web.Request) -> web.Response:
    before = parse_before_seq(request.query.get("before_seq"))
    items = await request.app[STALLBOX].sales(before, SALES_PER_PAGE + 1)
    older = items[SALES_PER_PAGE - 1]["seq"] if len(items) > SALES_PER_PAGE else None
    return render(request, "sales.html", sales=items[:SALES_PER_PAGE],
                  older_before=older, first_page=before is None)


async def render_sale(request: web.Request, sale_id: str, *, status: int = 200,
                      **extra: Any) -> web.Response:
    """Render one sale: receipt, print jobs, refunds and the refund form (#4)."""
    from daemon.ereceipt.web import email_context  # it imports this module
    from daemon.web.pages_refunds import refund_context  # it imports this module

    box = request.app[STALLBOX]
    sale = await box.sale(sale_id)
    receipt = await box.receipt_text(sale_id)
    return render(request, "sale.html", status=status, sale=sale, receipt=receipt,
                  job_words=JOB_WORDS, tender_labels=TENDER_LABELS,
                  **await refund_context(box, sale),
                  **await email_context(request, sale_id), **extra)


@routes.get("/sales/{id}")
async def sale_detail(request: web.Request) -> web.Response:
    return await render_sale(
        request, request.match_info["id"],
        reprinted=request.query.get("reprinted", "")[:20],
        refunded=request.query.get("refunded", "")[:20])


@routes.post("/sales/{id}/reprint")
async def reprint(request: web.Request) -> web.Response:
    check_same_origin(request)
    sale_id = request.match_info["id"]
    job_id = await request.app[STALLBOX].reprint(sale_id)
    _LOG.info("reprint of sale %s queued as job %d", sale_id, job_id)
    raise web.HTTPSeeOther(f"/sales/{sale_id}?reprinted={job_id}")
