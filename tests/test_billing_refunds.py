"""Tests for daemon.billing.refunds: refunds mirror what was paid."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.billing.cash import CashRounding
from daemon.billing.discounts import Discount, apply_discounts
from daemon.billing.pricing import LineInput, TaxRate, price_sale
from daemon.billing.refunds import PaidSale, Refund, paid_sale, refund, remaining_units
from daemon.billing.tenders import Payment, Tender, settle
from daemon.errors import ConflictError, InputError
from daemon.money import Currency

CHF = Currency.of("CHF")
CHF_RULE = CashRounding(5, "half_up")
RATES = {
    "standard": TaxRate("standard", "A", 810, "8,1 %"),
    "reduced": TaxRate("reduced", "B", 260, "2,6 %"),
    "exempt": TaxRate("exempt", "D", 0, "exempt"),
}


def book(
    lines: list[LineInput],
    tenders: list[Tender],
    sale_discount: Discount | None = None,
) -> PaidSale:
    totals = price_sale(lines, pricing="gross", rates=RATES, currency=CHF)
    done = apply_discounts(
        totals, rates=RATES, currency=CHF, sale_discount=sale_discount
    )
    settlement = settle(done.total_minor, tenders, rule=CHF_RULE, currency=CHF)
    return paid_sale(done, settlement, CHF_RULE)


def give_back(sale: PaidSale, before: list[int], units: dict[int, int]) -> Refund:
    return refund(sale, refunded_before=before, units=units, currency=CHF)


def item(qty: int, unit: int, tax_class: str = "standard", sku: str = "X") -> LineInput:
    return LineInput(sku, f"item {sku}", qty, unit, tax_class)


def test_a_999_line_refunds_exactly_999() -> None:
    sale = book([item(1, 999)], [Tender("card", 999)])
    done = give_back(sale, [0], {0: 1})

    assert done.goods_minor == done.total_minor == 999
    assert done.tenders == (Payment("card", 999),)
    (tax,) = done.taxes
    assert tax == sale.taxes[0]  # 9,99 at 8,1 %: tax 0,75, net 9,24


def test_unit_by_unit_refunds_add_up_to_the_line() -> None:
    sale = book([item(3, 1000)], [Tender("card", 3000)])
    amounts = []
    for n in range(3):
        done = give_back(sale, [n], {0: 1})
        amounts.append(done.goods_minor)
    assert amounts == [1000, 1000, 1000]

    discounted = book([item(3, 1000)], [Tender("card", 2000)], Discount("amount", 1000))
    parts = [give_back(discounted, [n], {0: 1}).goods_minor for n in range(3)]
    assert parts == [667, 666, 667] and sum(parts) == 2000


def test_cash_refund_returns_the_rounded_cash_with_the_last_unit() -> None:
    sale = book([item(1, 333, sku="a"), item(1, 1135, sku="b")], [Tender("cash", 2000)])
    assert sale.settlement.payments == (Payment("cash", 1470),)

    first = give_back(sale, [0, 0], {0: 1})
    assert first.tenders == (Payment("cash", 335),) and first.rounding_minor == 2
    second = give_back(sale, [1, 0], {1: 1})
    assert second.tenders == (Payment("cash", 1135),) and second.rounding_minor == 0
    assert first.total_minor + second.total_minor == 1470


def test_full_cash_refund_mirrors_the_rounding_line() -> None:
    sale = book([item(1, 1468)], [Tender("cash", 2000)])
    done = give_back(sale, [0], remaining_units(sale, [0]))

    assert done.goods_minor == 1468 and done.rounding_minor == 2
    assert done.tenders == (Payment("cash", 1470),)


def test_split_tender_refund_goes_to_card_first() -> None:
    sale = book(
        [item(1, 200, sku="a"), item(1, 1268, sku="b")],
        [Tender("card", 1000, "T-7"), Tender("cash", 500)],
    )
    small = give_back(sale, [0, 0], {0: 1})
    assert small.tenders == (Payment("card", 200, "T-7"),)

    rest = give_back(sale, [1, 0], {1: 1})
    assert rest.tenders == (Payment("card", 800, "T-7"), Payment("cash", 470))
    assert rest.rounding_minor == 2


def test_refund_taxes_per_rate_add_up_to_what_was_booked() -> None:
    sale = book(
        [item(3, 333, "standard"), item(2, 455, "reduced")], [Tender("card", 1909)]
    )
    before = [0, 0]
    refunds = []
    for units in ({0: 1}, {1: 1}, {0: 2, 1: 1}):
        refunds.append(give_back(sale, before, units))
        for i, n in units.items():
            before[i] += n

    for booked in sale.taxes:
        rows = [t for r in refunds for t in r.taxes if t.code == booked.code]
        assert sum(t.tax_minor for t in rows) == booked.tax_minor
        assert sum(t.net_minor for t in rows) == booked.net_minor
        assert sum(t.gross_minor for t in rows) == booked.gross_minor


def test_refunding_more_than_is_left_is_a_conflict() -> None:
    sale = book([item(2, 500)], [Tender("card", 1000)])
    with pytest.raises(ConflictError, match="1 unit"):
        give_back(sale, [1], {0: 2})
    with pytest.raises(ConflictError, match="0 unit"):
        give_back(sale, [2], {0: 1})


def test_deposit_return_cannot_be_left_behind() -> None:
    sale = book(
        [item(1, 500, sku="juice"), item(-1, 50, "exempt", sku="deposit-back")],
        [Tender("card", 450)],
    )
    with pytest.raises(InputError, match="deposit returns"):
        give_back(sale, [0, 0], {0: 1})
    with pytest.raises(InputError):
        give_back(sale, [0, 0], {1: 1})

    both = give_back(sale, [0, 0], {0: 1, 1: 1})
    assert both.goods_minor == 450 and both.tenders == (Payment("card", 450),)


def test_same_rate_deposit_return_cannot_be_left_behind() -> None:
    sale = book(
        [item(1, 500, sku="j"), item(-1, 50, sku="d"), item(1, 300, "reduced")],
        [Tender("card", 750)],
    )
    with pytest.raises(InputError, match="at tax A"):
        give_back(sale, [0, 0, 0], {0: 1})


@pytest.mark.parametrize(
    ("units", "message"),
    [({5: 1}, "no line 5"), ({0: 0}, "at least one unit"), ({0: -1}, "at least")],
)
def test_bad_refund_requests_are_refused(units: dict[int, int], message: str) -> None:
    sale = book([item(2, 500)], [Tender("card", 1000)])
    with pytest.raises(InputError, match=message):
        give_back(sale, [0], units)


def test_a_payout_is_not_refunded() -> None:
    sale = book([item(-1, 500, "exempt")], [Tender("cash", 0)])
    with pytest.raises(InputError, match="payout"):
        give_back(sale, [0], {0: 1})


# ---- property: any sequence of refunds never passes what was paid -----------

CART = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 5000), st.sampled_from(sorted(RATES))),
    min_size=1,
    max_size=6,
)


@given(CART, st.integers(0, 5000), st.integers(0, 100), st.randoms())
@settings(max_examples=200)
def test_refunds_never_exceed_payments(
    cart: list[tuple[int, int, str]], discount_bp: int, card_pct: int, rnd: object
) -> None:
    lines = [item(q, u, c, sku=str(i)) for i, (q, u, c) in enumerate(cart)]
    totals = price_sale(lines, pricing="gross", rates=RATES, currency=CHF)
    gross = apply_discounts(
        totals,
        rates=RATES,
        currency=CHF,
        sale_discount=Discount("percent", discount_bp),
    ).total_minor
    card = gross * card_pct // 100
    tenders = [Tender("card", card)] if card else []
    sale = book(
        lines, [*tenders, Tender("cash", 10**7)], Discount("percent", discount_bp)
    )

    before = [0] * len(lines)
    refunds: list[Refund] = []
    while left := remaining_units(sale, before):
        i = rnd.choice(sorted(left))  # type: ignore[attr-defined]
        n = rnd.randint(1, left[i])  # type: ignore[attr-defined]
        refunds.append(give_back(sale, before, {i: n}))
        before[i] += n

        for payment in sale.settlement.payments:
            back = sum(
                t.amount_minor
                for r in refunds
                for t in r.tenders
                if t.method == payment.method
            )
            assert 0 <= back <= payment.amount_minor

    assert all(r.total_minor >= 0 and r.goods_minor >= 0 for r in refunds)
    assert sum(r.goods_minor for r in refunds) == sale.settlement.total_minor
    assert sum(r.total_minor for r in refunds) == sale.settlement.collected_minor
    for booked in sale.taxes:
        rows = [t for r in refunds for t in r.taxes if t.code == booked.code]
        assert sum(t.tax_minor for t in rows) == booked.tax_minor
        assert all(t.net_minor + t.tax_minor == t.gross_minor for t in rows)
