"""Pages for the shift close (X and Z reports) and the public methodology page.

The sales-per-hour chart is inline SVG drawn here, so the report needs no
JavaScript and prints as it shows.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

from daemon.billing.carbon import METHOD_ID, METHOD_VERSION
from daemon.billing.factors import AGRIBALYSE, EPA_SUPPLY_CHAIN
from daemon.errors import InputError
from daemon.sales.checkout import annotate_carbon
from daemon.sales.shifts import (
    ShiftClose,
    carbon_text,
    closed_shift,
    closed_shifts,
    per_hour,
)
from daemon.sales.shifts import shift_report as x_report
from daemon.web.api_billing import close, parse_seq
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import check_same_origin, form_fields, render

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
CHART_W, CHART_H, CHART_PAD = 640, 220, 28
MAX_PRODUCTS_LISTED = 2000
LICENCES = {
    AGRIBALYSE: ("Licence Ouverte / Open Licence 2.0 (Etalab)",
                 "ADEME, Agribalyse synthesis table"),
    EPA_SUPPLY_CHAIN: ("Public domain (US federal government work)",
                       "US EPA, Supply Chain GHG Emission Factors for US "
                       "Commodities and Industries"),
}


def hours_chart(rows: Sequence[tuple[int, int, int]], money: Any) -> Markup:
    """Return an inline SVG bar chart of sales per hour (count on each bar)."""
    if not rows:
        return Markup("")
    top = max(count for _, count, _ in rows) or 1
    step = (CHART_W - 2 * CHART_PAD) / len(rows)
    usable = CHART_H - 2 * CHART_PAD
    parts = [f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
             f'aria-label="Sales per hour" xmlns="http://www.w3.org/2000/svg" '
             f'font-size="12" font-family="sans-serif">']
    for i, (hour, count, gross) in enumerate(rows):
        height = usable * count / top
        x = CHART_PAD + i * step
        y = CHART_H - CHART_PAD - height
        title = escape(f"{hour:02d}:00 · {count} sales · {money(gross)}")
        parts.append(
            f'<g><title>{title}</title><rect fill="#2f7d4f" x="{x + step * 0.1:.1f}" '
            f'y="{y:.1f}" width="{step * 0.8:.1f}" height="{height:.1f}"/>'
            f'<text x="{x + step / 2:.1f}" y="{CHART_H - 8}" '
            f'text-anchor="middle">{hour:02d}</text>'
            f'<text x="{x + step / 2:.1f}" y="{y - 4:.1f}" '
            f'text-anchor="middle">{count}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


async def _render_shifts(request: web.Request, *, status: int = 200,
                         error: str = "") -> web.Response:
    """Render the open shift's X report with the close form."""
    box = request.app[STALLBOX]
    code = box.config.stall.currency.code
    report = await box.reader.run(lambda c: x_report(c, code))
    closed = await box.reader.run(closed_shifts)
    return render(request, "shift.html", status=status, report=report,
                  closed=None, history=closed, error=error,
                  client_ref="close-" + secrets.token_urlsafe(12),
                  chart=_chart(request, report), carbon=carbon_text(report["carbon"]))


def _chart(request: web.Request, report: dict[str, Any]) -> Markup:
    currency = request.app[STALLBOX].config.stall.currency
    return hours_chart(per_hour(report),
                       lambda m: f"{currency.format(m)} {currency.symbol}")


@routes.get("/shifts")
async def shifts_page(request: web.Request) -> web.Response:
    return await _render_shifts(request)


def parse_amount(text: str, field: str, request: web.Request) -> int:
    """Parse a typed amount in the stall currency; empty is zero."""
    currency = request.app[STALLBOX].config.stall.currency
    text = text.strip()
    if not text:
        return 0
    try:
        value = currency.parse(text)
    except InputError as err:
        raise InputError(f"{field.replace('_', ' ')}: {err.detail}",
                         field=field) from err
    if value < 0:
        raise InputError(f"{field.replace('_', ' ')} cannot be negative", field=field)
    return value


@routes.post("/shifts/close")
async def close_submit(request: web.Request) -> web.Response:
    check_same_origin(request)
    try:
        fields = await form_fields(request, "client_ref", "counted", "float")
        if not 8 <= len(fields["client_ref"]) <= 64:
            raise InputError("reload the page and close again", field="client_ref")
        if not fields["counted"].strip():
            raise InputError("count the drawer and type the cash counted",
                             field="counted")
        report = await close(request.app[STALLBOX], ShiftClose(
            fields["client_ref"], parse_amount(fields["counted"], "counted", request),
            parse_amount(fields["float"], "float", request), request[TABLET_KEY]))
    except InputError as err:
        return await _render_shifts(request, status=422, error=err.detail)
    raise web.HTTPSeeOther(f"/shifts/{report['seq']}")


@routes.get("/shifts/{seq}")
async def z_report_page(request: web.Request) -> web.Response:
    seq = parse_seq(request.match_info["seq"])
    box = request.app[STALLBOX]
    report = await box.reader.run(lambda c: closed_shift(c, seq))
    return render(request, "shift.html", report=report, closed=seq, history=[],
                  error="", client_ref="", chart=_chart(request, report),
                  carbon=carbon_text(report["carbon"]))


@routes.get("/methodology")
async def methodology(request: web.Request) -> web.Response:
    box = request.app[STALLBOX]
    carbon = box.config.billing.carbon
    products = await box.products("", "", MAX_PRODUCTS_LISTED)
    rows = []
    if carbon is not None:
        for item in annotate_carbon(products, carbon):
            if item["carbon_factor_id"]:
                factor = carbon.table.factors[item["carbon_factor_id"]]
                rows.append((item, factor, exact_decimal(factor.kg_co2e_per_unit)))
    return render(request, "methodology.html", carbon=carbon, rows=rows,
                  method=(METHOD_ID, METHOD_VERSION), licences=LICENCES,
                  datasets=_datasets(carbon), decimal=exact_decimal)


def exact_decimal(value: Fraction, max_places: int = 12) -> str:
    """Write a factor as the decimal its publisher printed (exact when it ends)."""
    for places in range(max_places + 1):
        scaled = value * 10**places
        if scaled.denominator == 1:
            whole, frac = divmod(abs(scaled.numerator), 10**places)
            sign = "-" if value < 0 else ""
            return f"{sign}{whole}" + (f".{frac:0{places}d}" if places else "")
    return f"{float(value):.{max_places}g}"  # display only; the value stays exact


def _datasets(carbon: Any) -> list[tuple[str, str, int]]:
    """Return (dataset, version, factor count) of the stall's factor table."""
    if carbon is None:
        return []
    counts: dict[tuple[str, str], int] = {}
    for factor in carbon.table.factors.values():
        key = (factor.dataset, factor.version)
        counts[key] = counts.get(key, 0) + 1
    return [(d, v, n) for (d, v), n in sorted(counts.items())]
