"""HTML of the display: slot, cart, thank-you and the page around them.

Fragments are built by string formatting over escaped values, not by Jinja:
they are small and pushed many times, and the page must be assembled from
cached parts in microseconds. Every value from a person or the catalog goes
through ``e()``.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Iterable
from typing import Any

from daemon.display.model import BUCKET_S, Inventory, Slot

_LOG = logging.getLogger(__name__)
Money = Callable[[int], str]
MAX_QR_URL = 300


def e(value: object) -> str:
    """Escape a value for HTML text and attribute context."""
    return html.escape(str(value), quote=True)


@functools.lru_cache(maxsize=256)
def qr_svg(url: str) -> str:
    """Return an inline SVG QR code of url ("" if it cannot be made)."""
    if not url or len(url) > MAX_QR_URL:
        return ""
    import qrcode  # type: ignore[import-untyped]
    import qrcode.image.svg  # type: ignore[import-untyped]

    try:
        image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage,
                            box_size=8, border=2)
        svg = image.to_string(encoding="unicode")
    except (ValueError, qrcode.exceptions.DataOverflowError):
        _LOG.warning("could not make a QR code for a creative's link")
        return ""
    return svg[svg.index("<svg"):] if "<svg" in svg else ""


def _price_html(normal: int, live: int | None, money: Money) -> str:
    if live is None or live == normal:
        return f'<p class="price">{e(money(normal))}</p>'
    return (f'<p class="price live"><s>{e(money(normal))}</s> '
            f'<strong>{e(money(live))}</strong> <span>Live price</span></p>')


def render_slot(slot: Slot, inventory: Inventory, money: Money,
                stall_name: str) -> str:
    """Return the HTML of one slot with its creative."""
    head = f'<section class="slot slot-{e(slot.kind)}" data-slot="{e(slot.id)}">'
    if slot.pin is not None:
        name, normal = inventory.catalog.get(slot.pin.sku, (slot.pin.sku, 0))
        return (f'{head}<p class="tag">Live now</p><h2><bdi>{e(name)}</bdi></h2>'
                f"{_price_html(normal, slot.pin.price_minor, money)}</section>")
    creative = slot.creative
    if creative is None:
        return (f'{head}<h2>Welcome to <bdi>{e(stall_name)}</bdi></h2>'
                "</section>")
    return head + _creative_body(creative, inventory, money) + "</section>"


def _creative_body(creative: Any, inventory: Inventory, money: Money) -> str:
    parts = []
    if creative.sponsor:
        parts.append(f'<p class="tag">Sponsored by <bdi>{e(creative.sponsor)}'
                     "</bdi></p>")
    if creative.image:
        parts.append(f'<img src="/display/creative/{e(creative.image)}" alt="">')
    parts.append(f"<h2><bdi>{e(creative.title)}</bdi></h2>")
    if creative.text:
        parts.append(f'<p class="text"><bdi>{e(creative.text)}</bdi></p>')
    if creative.sku and creative.sku in inventory.catalog:
        _, normal = inventory.catalog[creative.sku]
        live = next((p.price_minor for p in inventory.pins
                     if p.sku == creative.sku), None)
        parts.append(_price_html(normal, live, money))
    qr = qr_svg(creative.url)
    if qr:
        parts.append(f'<figure class="qr" aria-label="QR code">{qr}</figure>')
    return "".join(parts)


def render_cart(lines: Iterable[dict[str, Any]], total_minor: int, money: Money,
                note: str = "") -> str:
    """Return the cart as the customer sees it: lines, total, a payment note."""
    items = "".join(
        f'<li><bdi class="name">{e(ln["name"])}</bdi>'
        f'<span class="qty">{ln["qty"]} ×</span>'
        f'{_unit_html(ln, money)}'
        f'<span class="amount">{e(money(ln["amount_minor"]))}</span></li>'
        for ln in lines)
    note_html = f'<p class="note" role="status">{e(note)}</p>' if note else ""
    return (f'<div class="cart"><h2>Your purchase</h2><ul>{items}</ul>'
            f'<p class="total"><span>Total</span> <strong>'
            f"{e(money(total_minor))}</strong></p>{note_html}</div>")


def _unit_html(line: dict[str, Any], money: Money) -> str:
    unit, normal = line["unit_minor"], line.get("normal_minor", line["unit_minor"])
    if unit == normal:
        return f'<span class="unit">{e(money(unit))}</span>'
    return (f'<span class="unit live"><s>{e(money(normal))}</s> '
            f"{e(money(unit))}</span>")


def render_thanks(sale: dict[str, Any], money: Money) -> str:
    """Return the thank-you after payment: total, change and carbon estimate."""
    parts = ['<div class="thanks"><h2>Thank you!</h2>',
             f'<p class="total"><span>Total</span> <strong>'
             f'{e(money(sale["total_minor"]))}</strong></p>']
    cash = next((p for p in sale.get("payments", ()) if p["method"] == "cash"),
                None)
    if cash is not None and sale.get("change_minor"):
        parts.append(f'<p class="given"><span>Cash given</span> <strong>'
                     f'{e(money(cash["tendered_minor"]))}</strong></p>')
    if sale.get("change_minor"):
        parts.append(f'<p class="change"><span>Change due</span> <strong>'
                     f'{e(money(sale["change_minor"]))}</strong></p>')
    carbon = sale.get("carbon")
    if carbon:
        parts.append(f'<p class="carbon">Estimated footprint ≈ {carbon["co2e_g"]} g '
                     f'CO₂e ({carbon["low_g"]}–{carbon["high_g"]} g)</p>')
    parts.append("</div>")
    return "".join(parts)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{stall}</title>
<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>
<link rel="stylesheet" href="/static/display.css">
<script src="/static/display.js" defer></script>
</head>
<body class="display display-{size} state-{state}" data-events="{events}">
<main>
<section id="cart" class="cart-region" aria-live="polite">{cart}</section>
<aside id="slot" class="slot-region" aria-label="Offers" lang="{lang}">{slot}</aside>
</main>
</body>
</html>
"""


# Without JavaScript the page reloads itself: every slot bucket when idle,
# sooner while a customer is at the till (a card payment: each second or two).
REFRESH_S = {"cart": 5, "card": 2}


def render_page(*, lang: str, stall: str, size: str, state: str, events: str,
                cart: str, slot: str) -> str:
    """Return the whole display page from its parts (slot and cart are HTML).

    The page's own texts are English; the slot carries the cohort's language,
    the language its creatives are chosen for.
    """
    return PAGE.format(lang=e(lang), stall=e(stall),
                       refresh=REFRESH_S.get(state, BUCKET_S),
                       size=e(size), state=e(state), events=e(events),
                       cart=cart, slot=slot)
