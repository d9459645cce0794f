"""The till's sale options: discounts, own containers, deposit returns, contribution.

Each option is one form button posting to ``/till/cart`` with its ``action``.
The handler here only changes the cart; the till prices the changed cart
right after and puts the old one back when the sale flow refuses it (a
discount larger than its line, say), so a refused option changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from daemon.errors import InputError
from daemon.money import Currency
from daemon.sales.settings import BillingSettings
from daemon.web.cart import Cart
from daemon.web.till_order import (
    credit_types,
    deposit_types,
    parse_discount,
    parse_units,
)

_LOG = logging.getLogger(__name__)
MAX_RETURN_TYPES = 20


@dataclass(frozen=True, slots=True)
class OptionInput:
    """One option button's form: what it names and what was typed."""

    sku: str
    value: str
    kind: str
    packaging: str
    qty: str


Option = Callable[[Cart, OptionInput, Currency, BillingSettings], None]


def line_discount(cart: Cart, form: OptionInput, currency: Currency,
                  billing: BillingSettings) -> None:
    """Set a line's discount (amount or percent off that line)."""
    line = cart.line(form.sku)
    line.discount = parse_discount(form.value, form.kind, currency, "line discount")


def line_discount_off(cart: Cart, form: OptionInput, currency: Currency,
                      billing: BillingSettings) -> None:
    """Remove a line's discount."""
    cart.line(form.sku).discount = None


def own_container(cart: Cart, form: OptionInput, currency: Currency,
                  billing: BillingSettings) -> None:
    """Toggle 'own container' on a line whose packaging gives a credit."""
    line = cart.line(form.sku)
    if line.packaging not in credit_types(billing):
        raise InputError(f"{line.name[:60]} has no packaging to swap for the "
                         "customer's own", field="own_container")
    line.own_container = not line.own_container


def sale_discount(cart: Cart, form: OptionInput, currency: Currency,
                  billing: BillingSettings) -> None:
    """Set the discount on the whole sale."""
    cart.discount = parse_discount(form.value, form.kind, currency, "sale discount")


def sale_discount_off(cart: Cart, form: OptionInput, currency: Currency,
                      billing: BillingSettings) -> None:
    """Remove the discount on the whole sale."""
    cart.discount = None


def deposit_return(cart: Cart, form: OptionInput, currency: Currency,
                   billing: BillingSettings) -> None:
    """Set how many containers of one type came back for their deposit."""
    kind = deposit_types(billing).get(form.packaging)
    if kind is None:
        raise InputError("choose a container that carries a deposit",
                         field="packaging")
    qty = parse_units(form.qty, "containers returned")
    if qty == 0:
        cart.deposit_returns.pop(form.packaging, None)
        return
    if form.packaging not in cart.deposit_returns and \
            len(cart.deposit_returns) >= MAX_RETURN_TYPES:
        raise InputError("too many kinds of containers returned", field="packaging")
    cart.deposit_returns[form.packaging] = qty


def contribution(cart: Cart, form: OptionInput, currency: Currency,
                 billing: BillingSettings) -> None:
    """Add or remove the climate contribution to the stall's named project."""
    if billing.contribution is None or billing.carbon is None:
        raise InputError("this stall offers no climate contribution",
                         field="contribution")
    cart.contribution = form.value == "on"


OPTIONS: dict[str, Option] = {
    "line-discount": line_discount, "line-discount-off": line_discount_off,
    "own-container": own_container, "sale-discount": sale_discount,
    "sale-discount-off": sale_discount_off, "deposit-return": deposit_return,
    "contribution": contribution,
}


def apply_option(cart: Cart, action: str, form: OptionInput, currency: Currency,
                 billing: BillingSettings) -> None:
    """Change the cart's options as one option button asked."""
    option = OPTIONS.get(action)
    if option is None:
        raise InputError("unknown cart action", field="action")
    if not cart.lines:
        raise InputError("the cart is empty: tap a product first", field="sku")
    option(cart, form, currency, billing)
    _LOG.debug("till option %s applied", action)
