"""The till: search, category grid, the tablet's cart and cash checkout."""

from __future__ import annotations

import copy
import logging
from typing import Any

from aiohttp import web
from yarl import URL

from daemon.billing.tenders import Tender
from daemon.display.web import cart_shown, sale_shown
from daemon.errors import ConflictError, InputError
from daemon.live.service import with_live_prices
from daemon.money import Currency
from daemon.sales.service import MAX_QTY, TENDER_LABELS, read_products
from daemon.web import till_order
from daemon.web.cart import Cart, store_for
from daemon.web.keys import STALLBOX, TABLET_KEY
from daemon.web.pages_common import check_same_origin, form_fields, render, tablet_key
from daemon.web.till_options import OptionInput, apply_option
from daemon.web.till_order import TillQuote

_LOG = logging.getLogger(__name__)
routes = web.RouteTableDef()
PRODUCTS_SHOWN = 60
MAX_QUERY = 100
NOTES_MAJOR = (5, 10, 20, 50, 100)  # banknotes offered as quick tenders
QUICK_TENDERS = 4
CART_ACTIONS = ("add", "inc", "dec", "set", "remove", "clear")


def _query(request: web.Request) -> tuple[str, str]:
    q = request.query.get("q", "")[:MAX_QUERY]
    return q.strip(), request.query.get("category", "")[:MAX_QUERY]


async def price_cart(request: web.Request, cart: Cart) -> TillQuote | None:
    """Price the cart as the sale will be priced (options too), or None if empty."""
    if not cart.lines:
        return None
    box = request.app[STALLBOX]
    skus = list(cart.lines)
    products = await box.reader.run(lambda c: read_products(c, skus))
    lines = [(ln.sku, ln.qty) for ln in cart.lines.values()]
    products = with_live_prices(box, products, lines)
    return till_order.quote(cart, products, box.config.stall, box.config.billing)


async def show_cart(request: web.Request, cart: Cart) -> None:
    """Push the cart to the customer displays linked to this till (#8)."""
    try:
        totals = await price_cart(request, cart)
    except InputError:
        totals = None
    cart_shown(request, cart, totals)


def quick_tenders(total_minor: int, currency: Currency) -> list[int]:
    """Return the next banknote amounts above the total, smallest first."""
    unit = 10**currency.exponent
    amounts = sorted({-(-total_minor // (note * unit)) * note * unit
                      for note in NOTES_MAJOR})
    return [amount for amount in amounts if amount > total_minor][:QUICK_TENDERS]


async def render_till(request: web.Request, q: str, category: str, *,
                      status: int = 200, error: str = "",
                      tendered: str = "",
                      pay: dict[str, str] | None = None) -> web.Response:
    """Render the till page with the tablet's cart and its sale options."""
    box = request.app[STALLBOX]
    cart = store_for(box).cart(tablet_key(request))
    products = await box.products(q, category, PRODUCTS_SHOWN + 1)
    try:
        totals = await price_cart(request, cart)
    except InputError as err:
        totals, error = None, error or err.detail
    total = totals.cash_due_minor if totals else 0
    return render(
        request, "till.html", status=status, q=q, category=category,
        categories=await box.categories(), products=products[:PRODUCTS_SHOWN],
        more_products=len(products) > PRODUCTS_SHOWN, cart=cart, totals=totals,
        quick=quick_tenders(total, box.config.stall.currency) if total else [],
        error=error, tendered=tendered, max_qty=MAX_QTY, pay=pay or {},
        **till_options_context(box))


def till_options_context(box: Any) -> dict[str, Any]:
    """Return what the option forms offer: credits, deposits, the contribution."""
    billing = box.config.billing
    offer = billing.contribution if billing.carbon is not None else None
    return {"credit_types": till_order.credit_types(billing),
            "deposit_types": till_order.deposit_types(billing),
            "contribution_offer": offer,
            "tender_labels": till_order.OTHER_TENDERS}


@routes.get("/till")
async def till(request: web.Request) -> web.Response:
    q, category = _query(request)
    return await render_till(request, q, category)


def till_url(q: str, category: str, fragment: str = "") -> str:
    """Return the till's address with the search kept."""
    query = {key: value for key, value in (("q", q), ("category", category))
             if value}
    return str(URL("/till").with_query(query).with_fragment(fragment or None))


async def find_product(request: web.Request, sku: str) -> dict[str, Any]:
    """Return the active catalog product with exactly this sku."""
    if not sku.strip():
        raise InputError("choose a product", field="sku")
    found = await request.app[STALLBOX].products(sku, "", 200)
    for product in found:
        if product["sku"] == sku:
            return product
    raise InputError(f"unknown product: {sku[:40]!r}", field="sku")


def parse_qty(text: str) -> int:
    """Parse a typed quantity: a whole number from 0 to MAX_QTY."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text[:6]) > MAX_QTY:
        raise InputError(f"quantity must be a whole number from 0 to {MAX_QTY}",
                         field="qty")
    return int(text)


async def apply_cart_action(request: web.Request, cart: Cart,
                            fields: dict[str, str]) -> None:
    """Change the cart as one form button asked."""
    action, sku = fields["action"], fields["sku"]
    if action == "add":
        cart.add(await find_product(request, sku))
    elif action == "inc":
        cart.change_qty(sku, 1)
    elif action == "dec":
        cart.change_qty(sku, -1)
    elif action == "set":
        cart.set_qty(sku, parse_qty(fields["qty"]))
    elif action == "remove":
        cart.remove(sku)
    elif action == "clear":
        cart.lines.clear()
        cart.reset_options()
    else:
        box = request.app[STALLBOX]
        apply_option(cart, action, OptionInput(
            sku, fields["value"], fields["kind"], fields["packaging"], fields["qty"]),
            box.config.stall.currency, box.config.billing)
    if not cart.lines:
        cart.reset_options()


async def change_cart(request: web.Request, cart: Cart,
                      fields: dict[str, str]) -> None:
    """Apply one cart action, or put the cart back if the sale flow refuses it."""
    saved = copy.deepcopy(cart)
    try:
        await apply_cart_action(request, cart, fields)
        await price_cart(request, cart)
    except InputError:
        cart.restore(saved)
        raise


@routes.post("/till/cart")
async def cart_change(request: web.Request) -> web.Response:
    check_same_origin(request)
    store = store_for(request.app[STALLBOX])
    key = tablet_key(request)
    try:
        fields = await form_fields(request, "action", "sku", "qty", "q", "category",
                                   "value", "kind", "packaging")
    except InputError as err:
        return await render_till(request, "", "", status=422, error=err.detail)
    q, category = fields["q"][:MAX_QUERY], fields["category"][:MAX_QUERY]
    async with store.lock(key):
        try:
            await change_cart(request, store.cart(key), fields)
        except InputError as err:
            return await render_till(request, q, category, status=422,
                                     error=err.detail)
        await show_cart(request, store.cart(key))
    fragment = {"add": "", "sale-discount": "options", "sale-discount-off": "options",
                "deposit-return": "options", "contribution": "options"}.get(
        fields["action"], "cart")
    raise web.HTTPSeeOther(till_url(q, category, fragment))


def parse_tendered(fields: dict[str, str], total_minor: int,
                   currency: Currency) -> int:
    """Return the cash given, from a quick button or the typed amount."""
    quick = fields["quick"].strip()
    if quick == "exact":
        return total_minor
    if quick:
        if not (quick.isascii() and quick.isdigit() and len(quick) <= 13):
            raise InputError("that quick amount is not valid", field="quick")
        return int(quick)
    typed = fields["tendered"].strip()
    if not typed:
        raise InputError("type the amount the customer gave, or tap Exact",
                         field="tendered")
    try:
        amount = currency.parse(typed)
    except InputError as err:
        raise InputError(f"amount given: {err.detail}", field="tendered") from err
    if amount < 0:
        raise InputError("the amount given cannot be negative", field="tendered")
    return amount


async def sale_for_ref(request: web.Request, client_ref: str) -> str | None:
    """Return the sale a checkout ref already became, if any.

    The cart store remembers recent refs; after a restart it has forgotten
    them, so the journal's client_ref index answers.
    """
    box = request.app[STALLBOX]
    sale_id = store_for(box).finished_sale(tablet_key(request), client_ref)
    if sale_id is not None:
        return sale_id
    return await box.sale_id_for_ref(client_ref)


async def sell_cart(request: web.Request, cart: Cart,
                    fields: dict[str, str]) -> str:
    """Sell the cart for the tenders the form names and return the sale id."""
    box = request.app[STALLBOX]
    totals = await price_cart(request, cart)
    if totals is None:
        raise InputError("the cart is empty: tap a product first", field="sku")
    tenders = checkout_tenders(fields, totals, box)
    outcome = await box.sell(till_order.cart_sale(cart, request[TABLET_KEY], tenders))
    sale_id = str(outcome.sale["id"])
    store_for(box).finish(tablet_key(request), cart.client_ref, sale_id)
    sale_shown(request, outcome.sale)
    _LOG.debug("till sale %s (new: %s)", sale_id, outcome.created)
    return sale_id


def checkout_tenders(fields: dict[str, str], totals: TillQuote,
                     box: Any) -> tuple[Tender, ...]:
    """Return a checkout form's tenders: cash, or voucher/gift card (+ cash)."""
    currency = box.config.stall.currency
    method = fields["method"].strip() or "cash"
    if totals.total_minor < 0 and method == "cash":
        return (Tender("cash", 0),)  # a payout: nothing is handed over
    if method == "cash":
        return (Tender("cash", parse_tendered(fields, totals.cash_due_minor,
                                              currency)),)
    amount = None
    if fields["amount"].strip():
        amount = till_order.parse_amount(fields["amount"], currency, "amount")
    paid = totals.total_minor if amount is None else amount
    due = till_order.cash_due(totals.total_minor, paid, box.config.billing)
    cash = None
    if due > 0 and fields["rest"] == "exact":
        cash = due
    elif due > 0 and fields["tendered"].strip():
        cash = parse_tendered({**fields, "quick": ""}, due, currency)
    return till_order.other_tenders(method, fields["ref"], amount, cash,
                                    totals.total_minor)


async def checkout_cart(request: web.Request, cart: Cart,
                        fields: dict[str, str]) -> web.Response:
    """Sell the open cart and show the change, or say what is wrong."""
    try:
        sale_id = await sell_cart(request, cart, fields)
    except (InputError, ConflictError) as err:  # a gift card short of money: 409
        status = 409 if isinstance(err, ConflictError) else 422
        return await render_till(request, "", "", status=status, error=str(err),
                                 tendered=fields["tendered"], pay=fields)
    raise web.HTTPSeeOther(f"/till/change/{sale_id}")


@routes.post("/till/checkout")
async def checkout(request: web.Request) -> web.Response:
    check_same_origin(request)
    try:
        fields = await form_fields(request, "client_ref", "tendered", "quick",
                                   "method", "ref", "amount", "rest")
    except InputError as err:
        return await render_till(request, "", "", status=422, error=err.detail)
    store = store_for(request.app[STALLBOX])
    key = tablet_key(request)
    async with store.lock(key):
        cart = store.cart(key)
        if fields["client_ref"] == cart.client_ref:
            return await checkout_cart(request, cart, fields)
        sale_id = await sale_for_ref(request, fields["client_ref"])
    if sale_id is None:
        return await render_till(
            request, "", "", status=409, tendered=fields["tendered"],
            error="this cart changed since the page was shown; nothing was "
                  "sold. Check the cart and tap Pay again.")
    raise web.HTTPSeeOther(f"/till/change/{sale_id}")


@routes.get("/till/change/{id}")
async def change_screen(request: web.Request) -> web.Response:
    sale = await request.app[STALLBOX].sale(request.match_info["id"])
    cash = next((p for p in sale["payments"] if p["method"] == "cash"), None)
    return render(request, "change.html", sale=sale, cash=cash,
                  tender_labels=TENDER_LABELS)
