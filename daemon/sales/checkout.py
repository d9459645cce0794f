"""Turn a sale request into a priced, settled sale with its carbon estimate.

The order is fixed, so a receipt can be recomputed from its record:

1. Goods lines as requested, then packaging lines (fee and deposit per unit
   taken, an own-container credit per unit filled into the customer's own),
   then deposit returns (negative lines); tax per rate is on the receipt's
   total of all of them (``pricing.tax_totals``).
2. Line and sale discounts (``discounts``) apply to the goods only: a fee,
   deposit, credit or contribution is never discounted (a deposit comes back
   in full, so it must have been paid in full), nor is a gift card (worth its
   face value, paid in full: a line discount on it is refused, the sale
   discount goes over the other lines).
3. The carbon estimate over the goods lines at what was paid for them, plus
   the packaging's material for the units that took it. Gift cards are money,
   not goods, and carry no footprint.
4. The optional climate contribution (priced from that estimate) is appended
   as a line of its own that no discount touches, so it never changes the
   estimate it was priced from, and is never subtracted from it.
5. Tenders settle the total (``tenders.settle``): non-cash first, cash last
   and rounded per the stall's rule, the difference booked as its own line.

Nothing here does I/O; ``service.create_sale`` reads the products and
journals the result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from daemon.billing.carbon import CarbonEstimate, CarbonLine, carbon_record, estimate
from daemon.billing.cash import round_cash
from daemon.billing.contribution import contribution_line
from daemon.billing.discounts import (
    Discount,
    DiscountedLine,
    DiscountedSale,
    discount_lines,
)
from daemon.billing.packaging import PackagedQty, PackagingType, packaging_lines
from daemon.billing.pricing import (
    LineInput,
    PricedLine,
    SaleTotals,
    price_lines,
    price_sale,
    tax_totals,
)
from daemon.billing.tenders import Settlement, Tender, settle
from daemon.config import StallConfig
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR
from daemon.sales.settings import BillingSettings, CarbonSettings

_LOG = logging.getLogger(__name__)
MAX_CACHED_CHOICES = 10_000  # distinct (reference, category, has mass) keys


@dataclass(frozen=True, slots=True)
class Product:
    """What the sale flow needs of a catalog product."""

    sku: str
    name: str
    price_minor: int
    tax_class: str
    category: str = ""
    weight_g: int | None = None
    gift_card: bool = False
    packaging: str = ""
    carbon_factor: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    """A sale as asked for: lines with options, discounts, returns, tenders."""

    lines: tuple[tuple[str, int], ...]
    tenders: tuple[Tender, ...]
    line_discounts: tuple[tuple[int, Discount], ...] = ()
    own_container: frozenset[int] = frozenset()
    sale_discount: Discount | None = None
    deposit_returns: tuple[tuple[str, int], ...] = ()
    contribution: bool = False


@dataclass(frozen=True, slots=True)
class FactorChoice:
    """Which factor a product's footprint uses, how it was chosen, and any flag."""

    factor_id: str
    how: str  # "catalog", "category" or "default"
    flag: str = ""  # "", "unmapped" or "no_mass": the default stood in


@dataclass(frozen=True, slots=True)
class PricedSale:
    """A sale ready to journal: priced lines, their kinds, settlement, carbon."""

    sale: DiscountedSale
    kinds: tuple[str, ...]  # per line: goods, fee, deposit, credit, ...
    packaging: tuple[str, ...]  # per line: its packaging type or ""
    settlement: Settlement
    carbon: CarbonEstimate | None = None
    carbon_record: dict[str, object] | None = None
    contribution_minor: int = 0
    flags: tuple[tuple[str, str], ...] = field(default=())


def price_order(order: Order, products: Mapping[str, Product], stall: StallConfig,
                billing: BillingSettings) -> PricedSale:
    """Price, discount, estimate and settle an order (see the module docstring)."""
    goods = [_goods_input(i, sku, qty, products) for i, (sku, qty)
             in enumerate(order.lines)]
    extra, kinds, packs = _extra_lines(order, products, billing.packaging)
    priced_goods = _price_lines(goods, stall)
    cards = frozenset(i for i, (sku, _) in enumerate(order.lines)
                      if products[sku].gift_card)  # face value: no discount
    discounted, sale_off, by_code = discount_lines(
        priced_goods, dict(order.line_discounts), order.sale_discount, cards)
    if extra:  # packaging and deposit return lines; most sales have none
        discounted = (*discounted, *_undiscounted(_price_lines(extra, stall)))
    sale = _with_taxes(discounted, sale_off, by_code, stall)
    carbon = record = None
    flags: list[tuple[str, str]] = []
    if billing.carbon is not None:
        lines = carbon_lines(order, products, sale, billing, flags)
        carbon = estimate(lines, billing.carbon.table,
                          conversion=billing.carbon.conversion,
                          currency=stall.currency)
        record = carbon_record(lines, billing.carbon.table,
                               billing.carbon.conversion, stall.currency)
    sale, added = _with_contribution(order, sale, carbon, stall, billing)
    kinds = ("goods",) * len(goods) + kinds + (("contribution",) if added else ())
    packs = ("",) * len(goods) + packs + (("",) if added else ())
    settlement = _settle(sale.total_minor, order.tenders, stall, billing)
    return PricedSale(sale, kinds, packs, settlement, carbon, record, added,
                      tuple(flags))


def _settle(total_minor: int, tenders: Sequence[Tender], stall: StallConfig,
            billing: BillingSettings) -> Settlement:
    """Settle the total; a short cash tender names what was due in cash."""
    try:
        return settle(total_minor, tenders, rule=billing.cash,
                      currency=stall.currency)
    except InputError as err:
        if err.field != "tendered_minor":
            raise
        money = stall.currency
        cash = next(t.amount_minor for t in tenders if t.method == "cash")
        due = round_cash(total_minor - sum(t.amount_minor for t in tenders
                                           if t.method != "cash"), billing.cash)
        raise InputError(f"tendered {money.format(cash)} is less than the total "
                         f"{money.format(due)} due in cash",
                         field="tendered_minor") from err


def _price(lines: Sequence[LineInput], stall: StallConfig) -> SaleTotals:
    """Price lines in the stall's pricing mode."""
    return price_sale(lines, pricing=stall.pricing,  # type: ignore[arg-type]
                      rates=stall.tax_rates, currency=stall.currency)


def _price_lines(lines: Sequence[LineInput], stall: StallConfig
                 ) -> tuple[PricedLine, ...]:
    """Price lines in the stall's pricing mode; tax comes once, for the sale."""
    priced = price_lines(lines, pricing=stall.pricing,  # type: ignore[arg-type]
                         rates=stall.tax_rates)
    if abs(sum(line.amount_minor for line in priced)) > MAX_AMOUNT_MINOR:
        tax_totals(((stall.tax_rates[x.tax_class], x.amount_minor) for x in priced),
                   stall.currency)  # raises, naming the total out of range
    return priced


def _undiscounted(lines: Sequence[PricedLine]) -> tuple[DiscountedLine, ...]:
    """Return lines no discount touches (fees, deposits, credits, contribution)."""
    return tuple(DiscountedLine(x, 0, 0, x.amount_minor) for x in lines)


def _with_taxes(lines: tuple[DiscountedLine, ...], sale_off: int,
                by_code: tuple[tuple[str, int], ...], stall: StallConfig
                ) -> DiscountedSale:
    """Return the sale with tax per rate over what each line costs."""
    by_class: dict[str, int] = {}  # few classes: sum per class, then per rate
    for d in lines:
        tax_class = d.line.tax_class
        by_class[tax_class] = by_class.get(tax_class, 0) + d.paid_minor
    rates = stall.tax_rates
    taxes = tax_totals(((rates[c], g) for c, g in by_class.items()), stall.currency)
    return DiscountedSale(lines, taxes, sale_off, by_code,
                          sum(t.gross_minor for t in taxes))


def append_undiscounted(sale: DiscountedSale, lines: Sequence[PricedLine],
                        stall: StallConfig) -> DiscountedSale:
    """Append lines no discount touches (fees, deposits, credits, contribution)."""
    if not lines:
        return sale
    return _with_taxes((*sale.lines, *_undiscounted(lines)),
                       sale.sale_discount_minor, sale.sale_discount_by_code, stall)


def _goods_input(index: int, sku: str, qty: int,
                 products: Mapping[str, Product]) -> LineInput:
    """Return the line input of one requested product, or raise naming the line."""
    product = products.get(sku)
    if product is None:
        raise InputError(f"unknown or inactive product: {sku!r}",
                         field=f"lines[{index}].sku")
    return LineInput(sku, product.name, qty, product.price_minor, product.tax_class)


def _extra_lines(order: Order, products: Mapping[str, Product],
                 types: Mapping[str, PackagingType],
                 ) -> tuple[list[LineInput], tuple[str, ...], tuple[str, ...]]:
    """Return packaging and deposit return lines with their kinds and types."""
    packaged = []
    for index, (sku, qty) in enumerate(order.lines):
        kind = products[sku].packaging
        own = index in order.own_container
        if own and not (kind and kind in types):
            raise InputError(f"{products[sku].name} comes in no packaging to "
                             "replace with the customer's own",
                             field=f"lines[{index}].own_container")
        if kind and kind in types:
            packaged.append(PackagedQty(kind, qty, own))
        elif kind:
            _LOG.warning("packaging %r of %s is not configured; no fee", kind, sku)
    if not packaged and not order.deposit_returns:
        return [], (), ()  # most sales: nothing packaged, nothing handed back
    lines = list(packaging_lines(packaged, types))
    for index, (key, qty) in enumerate(order.deposit_returns):
        lines.append(_deposit_return(index, key, qty, types))
    kinds = tuple(line.sku.split(":", 1)[0] for line in lines)
    packs = tuple(line.sku.split(":", 1)[1] for line in lines)
    return lines, kinds, packs


def _deposit_return(index: int, key: str, qty: int,
                    types: Mapping[str, PackagingType]) -> LineInput:
    """Return one deposit return as a line of qty units at minus the deposit.

    The quantity stays positive (units handed back) and the unit price is
    negative, so every journaled line has qty >= 1 like the goods.
    """
    kind = types.get(key)
    if kind is None or not kind.deposit_minor:
        known = ", ".join(k for k, t in sorted(types.items()) if t.deposit_minor)
        raise InputError(f"no deposit on packaging {key[:40]!r} (with a deposit: "
                         f"{known or 'none configured'})",
                         field=f"deposit_returns[{index}].packaging")
    return LineInput(f"deposit-return:{key}", f"{kind.label} deposit return", qty,
                     -kind.deposit_minor, kind.deposit_tax_class)


def choose_factor(product: Product, carbon: CarbonSettings) -> FactorChoice:
    """Return the factor of a product: catalog reference, category, or default."""
    return _choice(product, carbon)[0]


def _choice(product: Product, carbon: CarbonSettings) -> tuple[FactorChoice, str]:
    """Return a product's factor choice and the factor's basis, cached per key.

    The choice depends only on the catalog reference, the category and whether
    a net mass is known, so it is worked out once per settings object (a new
    config or factor table brings a new, empty cache).
    """
    key = (product.carbon_factor, product.category, bool(product.weight_g))
    found = carbon.choices.get(key)
    if found is None:
        choice = _choose(product, carbon)
        found = (choice, carbon.table.factors[choice.factor_id].basis)
        if len(carbon.choices) < MAX_CACHED_CHOICES:
            carbon.choices[key] = found
    return found


def _choose(product: Product, carbon: CarbonSettings) -> FactorChoice:
    """Work out a product's factor: catalog reference, category, or default."""
    factor_id = carbon.resolve(product.carbon_factor) if product.carbon_factor \
        else None
    how = "catalog"
    if factor_id is None:
        factor_id, how = carbon.categories.get(product.category.casefold()), \
            "category"
    if factor_id is None:
        return FactorChoice(carbon.default_factor_id, "default", "unmapped")
    factor = carbon.table.factors[factor_id]
    if factor.basis == "mass" and not product.weight_g:
        return FactorChoice(carbon.default_factor_id, "default", "no_mass")
    return FactorChoice(factor_id, how)


def carbon_lines(order: Order, products: Mapping[str, Product],
                 sale: DiscountedSale, billing: BillingSettings,
                 flags: list[tuple[str, str]]) -> list[CarbonLine]:
    """Return the carbon inputs of the goods lines; flag defaulted products."""
    assert billing.carbon is not None
    carbon = billing.carbon
    rates = {t.code: t.rate_bp for t in sale.taxes}
    packaging = billing.packaging
    out = []
    for index, (sku, qty) in enumerate(order.lines):
        product = products[sku]
        if product.gift_card:
            continue
        choice, basis = _choice(product, carbon)
        if choice.flag:
            flags.append((sku, choice.flag))
        line = sale.lines[index]
        kind = packaging.get(product.packaging) if product.packaging else None
        if kind is None or not kind.material or index in order.own_container:
            material, mass = "", 0
        else:
            material, mass = kind.material, kind.mass_g
        out.append(CarbonLine(
            sku, qty, choice.factor_id,
            (product.weight_g or 0) if basis == "mass" else None,
            line.paid_minor if line.paid_minor > 0 else 0,
            rates[line.line.tax_code], material, mass, bool(choice.flag)))
    return out


def _with_contribution(order: Order, sale: DiscountedSale,
                       carbon: CarbonEstimate | None, stall: StallConfig,
                       billing: BillingSettings) -> tuple[DiscountedSale, int]:
    """Append the climate contribution line, undiscounted; return it and its amount."""
    if not order.contribution:
        return sale, 0
    offer = billing.contribution
    if offer is None or carbon is None:
        raise InputError("this stall offers no climate contribution",
                         field="contribution")
    line = contribution_line(offer, max(carbon.total_kg, Fraction(0)))
    if line.unit_minor <= 0:
        return sale, 0
    priced = _price([line], stall).lines
    return append_undiscounted(sale, priced, stall), priced[0].amount_minor


def annotate_carbon(items: list[dict[str, Any]],
                    carbon: CarbonSettings | None) -> list[dict[str, Any]]:
    """Add each catalog item's factor, how it was chosen and its carbon_flag."""
    for item in items:
        if carbon is None or item["gift_card"]:
            item.update(carbon_factor_id="", carbon_factor_how="", carbon_flag="")
            continue
        choice = choose_factor(Product(
            item["sku"], item["name"], item["price_minor"], item["tax_class"],
            item["category"], item["weight_g"], False, item["packaging"],
            item["carbon_factor"]), carbon)
        item.update(carbon_factor_id=choice.factor_id, carbon_factor_how=choice.how,
                    carbon_flag=choice.flag)
    return items


@dataclass(frozen=True, slots=True)
class CartQuote:
    """What a till shows before checkout: goods lines, extra lines and what is due."""

    lines: tuple[PricedLine, ...]  # the goods, one per cart line
    extra: tuple[tuple[str, int], ...]  # (name, amount) of fees, deposits, credits
    total_minor: int
    cash_due_minor: int  # the total in cash, rounded by the stall's rule


def quote_cart(lines: Sequence[tuple[str, int]], products: Mapping[str, Product],
               stall: StallConfig, billing: BillingSettings) -> CartQuote:
    """Price a till cart exactly as its cash sale will be priced."""
    order = Order(tuple(lines), (Tender("cash", MAX_AMOUNT_MINOR),))
    priced = price_order(order, products, stall, billing)
    goods = tuple(d.line for d in priced.sale.lines[:len(lines)])
    extra = tuple((d.line.name, d.paid_minor)
                  for d in priced.sale.lines[len(lines):])
    cash_due = priced.settlement.payments[-1].amount_minor
    return CartQuote(goods, extra, priced.sale.total_minor, cash_due)
