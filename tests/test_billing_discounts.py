"""Tests for daemon.billing.discounts: line and sale discounts by rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.billing.discounts import Discount, DiscountedSale, apply_discounts
from daemon.billing.pricing import LineInput, TaxRate, price_sale
from daemon.errors import InputError
from daemon.money import Currency

EUR = Currency.of("EUR")
RATES = {
    "standard": TaxRate("standard", "A", 1900, "19 %"),
    "reduced": TaxRate("reduced", "B", 700, "7 %"),
    "exempt": TaxRate("exempt", "D", 0, "exempt"),
}


def sale(
    lines: list[LineInput],
    line_discounts: dict[int, Discount] | None = None,
    sale_discount: Discount | None = None,
) -> DiscountedSale:
    totals = price_sale(lines, pricing="gross", rates=RATES, currency=EUR)
    return apply_discounts(
        totals,
        rates=RATES,
        currency=EUR,
        line_discounts=line_discounts,
        sale_discount=sale_discount,
    )


def line(qty: int, unit: int, tax_class: str, sku: str = "X") -> LineInput:
    return LineInput(sku, sku, qty, unit, tax_class)


def test_no_discount_changes_nothing() -> None:
    lines = [line(2, 450, "reduced"), line(1, 1190, "standard")]
    done = sale(lines)
    plain = price_sale(lines, pricing="gross", rates=RATES, currency=EUR)

    assert done.taxes == plain.taxes and done.total_minor == plain.total_minor
    assert done.sale_discount_minor == 0 and done.sale_discount_by_code == ()


def test_line_percent_discount_lowers_only_its_rate() -> None:
    done = sale(
        [line(1, 1000, "reduced"), line(1, 1190, "standard")],
        line_discounts={1: Discount("percent", 1000, "10 %")},
    )

    assert [d.paid_minor for d in done.lines] == [1000, 1071]
    assert done.lines[1].line_discount_minor == 119
    by_code = {t.code: t for t in done.taxes}
    assert by_code["B"].gross_minor == 1000 and by_code["A"].gross_minor == 1071
    assert by_code["A"].tax_minor == 171  # 1071 x 19/119 = 171.0
    assert done.total_minor == 2071


def test_sale_amount_discount_is_split_by_rate_share() -> None:
    # Base 30,00 at 7 % and 10,00 at 19 %: 4,00 off splits 3,00 / 1,00.
    done = sale(
        [line(1, 3000, "reduced"), line(1, 1000, "standard")],
        sale_discount=Discount("amount", 400),
    )

    assert done.sale_discount_by_code == (("A", 100), ("B", 300))
    assert {t.code: t.gross_minor for t in done.taxes} == {"A": 900, "B": 2700}
    assert {t.code: t.tax_minor for t in done.taxes} == {"A": 144, "B": 177}
    assert done.total_minor == 3600


def test_sale_percent_discount_rounds_once_and_gives_leftover_by_remainder() -> None:
    # 10 % of 1,00 + 1,00 + 1,01 is 0,301 -> 0,30, rounded once. By rate that
    # is 9,97 / 9,97 / 10,07 cents: floors 9 / 9 / 10, and the two cents left
    # go to the two largest remainders (0,97 each), not to 0,07.
    done = sale(
        [line(1, 100, "reduced"), line(1, 100, "standard"), line(1, 101, "exempt")],
        sale_discount=Discount("percent", 1000),
    )

    assert done.sale_discount_minor == 30
    assert dict(done.sale_discount_by_code) == {"A": 10, "B": 10, "D": 10}
    assert done.total_minor == 271


def test_ties_go_to_the_lower_tax_code() -> None:
    done = sale(
        [line(1, 100, "reduced"), line(1, 100, "standard")],
        sale_discount=Discount("amount", 1),
    )
    assert done.sale_discount_by_code == (("A", 1),)


def test_sale_discount_within_a_rate_goes_to_lines() -> None:
    done = sale(
        [line(1, 200, "reduced", "a"), line(1, 100, "reduced", "b")],
        sale_discount=Discount("amount", 100),
    )
    assert [d.sale_discount_minor for d in done.lines] == [67, 33]
    assert [d.paid_minor for d in done.lines] == [133, 67]


def test_negative_lines_are_not_discounted() -> None:
    done = sale(
        [line(1, 1000, "standard"), line(-2, 25, "exempt", "deposit")],
        sale_discount=Discount("percent", 5000),
    )
    assert done.sale_discount_minor == 500
    assert [d.paid_minor for d in done.lines] == [500, -50]
    assert done.total_minor == 450

    with pytest.raises(InputError, match="negative"):
        sale([line(-1, 25, "exempt")], line_discounts={0: Discount("amount", 1)})


@pytest.mark.parametrize(
    ("discount", "message"),
    [
        (Discount("amount", 1001), "exceeds"),
        (Discount("percent", 10_001), "at most"),
        (Discount("amount", -1), "non-negative"),
        (Discount("coupon", 1), "unknown discount kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_discounts_are_refused(discount: Discount, message: str) -> None:
    with pytest.raises(InputError, match=message):
        sale([line(1, 1000, "standard")], sale_discount=discount)
    with pytest.raises(InputError, match=message):
        sale([line(1, 1000, "standard")], line_discounts={0: discount})


def test_discount_on_a_missing_line_is_refused() -> None:
    with pytest.raises(InputError, match="no line 3"):
        sale([line(1, 1000, "standard")], line_discounts={3: Discount("amount", 1)})


CARTS = st.lists(
    st.tuples(
        st.integers(1, 12), st.integers(0, 50_000), st.sampled_from(sorted(RATES))
    ),
    min_size=1,
    max_size=12,
)


@given(CARTS, st.integers(0, 10_000))
def test_sale_discount_by_rate_ignores_line_splitting(
    cart: list[tuple[int, int, str]], percent_bp: int
) -> None:
    merged = [line(q, u, c) for q, u, c in cart]
    split = [line(1, u, c) for q, u, c in cart for _ in range(q)]
    discount = Discount("percent", percent_bp)
    a, b = sale(merged, sale_discount=discount), sale(split, sale_discount=discount)

    assert a.taxes == b.taxes
    assert a.sale_discount_by_code == b.sale_discount_by_code
    assert a.total_minor == b.total_minor


@given(CARTS, st.integers(0, 10_000), st.integers(0, 10_000))
def test_discounted_sale_stays_consistent(
    cart: list[tuple[int, int, str]], line_bp: int, sale_bp: int
) -> None:
    lines = [line(q, u, c) for q, u, c in cart]
    done = sale(
        lines,
        line_discounts={0: Discount("percent", line_bp)},
        sale_discount=Discount("percent", sale_bp),
    )

    assert all(d.paid_minor >= 0 for d in done.lines)
    assert sum(d.paid_minor for d in done.lines) == done.total_minor
    assert sum(s for _, s in done.sale_discount_by_code) == done.sale_discount_minor
    for tax in done.taxes:
        assert tax.net_minor + tax.tax_minor == tax.gross_minor
