"""Carts of the till pages: in memory, one per paired tablet.

A cart is not a sale. It lives only in this process, keyed by the tablet's
token hash, and is lost when the daemon restarts; the cashier then rings the
items up again. Nothing in a cart is journaled until checkout turns it into a
sale through ``Stallbox.sell``.

Each cart carries a ``client_ref`` made when the cart is created. The checkout
form sends it back, and ``sell`` is idempotent by it, so a double tap or a form
resubmitted after a Wi-Fi drop returns the first sale instead of a second one.
After a sale the tablet gets a fresh cart with a fresh ``client_ref``; the refs
of its last sales are remembered so a late resubmission finds its sale.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from daemon.billing.discounts import Discount
from daemon.errors import InputError
from daemon.sales.service import MAX_LINES, MAX_QTY

_LOG = logging.getLogger(__name__)
REMEMBERED_SALES = 20  # finished client_refs kept per tablet for resubmissions


def new_client_ref() -> str:
    """Return a fresh idempotency key for one cart's checkout."""
    return "till-" + secrets.token_urlsafe(12)


@dataclass(slots=True)
class CartLine:
    """One product in the cart with the catalog price seen when it was added."""

    sku: str
    name: str
    unit_minor: int
    tax_class: str
    qty: int
    packaging: str = ""
    discount: Discount | None = None
    own_container: bool = False


@dataclass(slots=True)
class Cart:
    """The lines a tablet is ringing up, in the order they were first added.

    Besides the lines, a cart holds the sale's options until checkout: a sale
    discount, containers handed back for their deposit, and whether the
    customer adds the climate contribution.
    """

    client_ref: str = field(default_factory=new_client_ref)
    lines: dict[str, CartLine] = field(default_factory=dict)
    discount: Discount | None = None
    deposit_returns: dict[str, int] = field(default_factory=dict)
    contribution: bool = False

    def restore(self, saved: Cart) -> None:
        """Put back lines and options saved before a change that was refused."""
        self.lines, self.discount = saved.lines, saved.discount
        self.deposit_returns = saved.deposit_returns
        self.contribution = saved.contribution

    def reset_options(self) -> None:
        """Drop the sale options (discount, returns, contribution) with the lines."""
        self.discount, self.deposit_returns, self.contribution = None, {}, False

    @property
    def item_count(self) -> int:
        """Return the number of items over all lines."""
        return sum(line.qty for line in self.lines.values())

    def add(self, product: dict[str, Any], qty: int = 1) -> None:
        """Add qty of a catalog product, merging with its line if present."""
        line = self.lines.get(product["sku"])
        if line is not None:
            self.set_qty(line.sku, line.qty + qty)
            return
        if len(self.lines) >= MAX_LINES:
            raise InputError(f"a sale holds at most {MAX_LINES} different products",
                             field="sku")
        _check_qty(qty)
        self.lines[product["sku"]] = CartLine(
            sku=product["sku"], name=product["display_name"],
            unit_minor=product["price_minor"], tax_class=product["tax_class"],
            qty=qty, packaging=str(product.get("packaging") or ""))

    def change_qty(self, sku: str, delta: int) -> None:
        """Add delta to a line's quantity; reaching zero removes the line."""
        self.set_qty(sku, self.line(sku).qty + delta)

    def set_qty(self, sku: str, qty: int) -> None:
        """Set a line's quantity; zero removes the line."""
        line = self.line(sku)
        if qty <= 0:
            del self.lines[sku]
            return
        _check_qty(qty)
        line.qty = qty

    def remove(self, sku: str) -> None:
        """Drop a line from the cart."""
        self.line(sku)
        del self.lines[sku]

    def line(self, sku: str) -> CartLine:
        """Return the cart's line for a sku."""
        line = self.lines.get(sku)
        if line is None:
            raise InputError("that product is not in the cart", field="sku")
        return line


def _check_qty(qty: int) -> None:
    if qty > MAX_QTY:
        raise InputError(f"quantity must be at most {MAX_QTY}", field="qty")


@dataclass(slots=True)
class _TabletCarts:
    cart: Cart = field(default_factory=Cart)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finished: OrderedDict[str, str] = field(default_factory=OrderedDict)


class CartStore:
    """All tablets' carts of one daemon, and the sales their refs became."""

    def __init__(self) -> None:
        self._tablets: dict[str, _TabletCarts] = {}

    def _slot(self, tablet: str) -> _TabletCarts:
        slot = self._tablets.get(tablet)
        if slot is None:
            slot = self._tablets[tablet] = _TabletCarts()
        return slot

    def cart(self, tablet: str) -> Cart:
        """Return the tablet's open cart, creating an empty one."""
        return self._slot(tablet).cart

    def lock(self, tablet: str) -> asyncio.Lock:
        """Return the lock that orders one tablet's cart changes and checkouts."""
        return self._slot(tablet).lock

    def finish(self, tablet: str, client_ref: str, sale_id: str) -> None:
        """Remember the sale a ref became and give the tablet a fresh cart."""
        slot = self._slot(tablet)
        slot.finished[client_ref] = sale_id
        while len(slot.finished) > REMEMBERED_SALES:
            slot.finished.popitem(last=False)
        if slot.cart.client_ref == client_ref:
            slot.cart = Cart()
        _LOG.debug("cart %s became sale %s", client_ref, sale_id)

    def clear(self) -> None:
        """Drop every cart and remembered ref, as a restart does."""
        self._tablets.clear()

    def finished_sale(self, tablet: str, client_ref: str) -> str | None:
        """Return the sale a finished ref became, or None."""
        return self._slot(tablet).finished.get(client_ref)


_STORES: weakref.WeakKeyDictionary[object, CartStore] = weakref.WeakKeyDictionary()


def store_for(owner: object) -> CartStore:
    """Return the cart store of one running daemon (keyed by its Stallbox)."""
    store = _STORES.get(owner)
    if store is None:
        store = _STORES[owner] = CartStore()
    return store
