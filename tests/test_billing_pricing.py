"""Tests for daemon.billing.pricing: per-rate tax on the receipt total."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import daemon.billing
from daemon.billing.pricing import (
    MAX_QTY,
    LineInput,
    SaleTotals,
    TaxRate,
    gross_unit,
    price_sale,
)
from daemon.errors import InputError
from daemon.money import MAX_AMOUNT_MINOR, Currency

EUR = Currency.of("EUR")
DE = {
    "standard": TaxRate("standard", "A", 1900, "19 %"),
    "reduced": TaxRate("reduced", "B", 700, "7 %"),
    "zero": TaxRate("zero", "C", 0, "0 %"),
    "exempt": TaxRate("exempt", "D", 0, "exempt"),
}
FR_REDUCED = {"reduced": TaxRate("reduced", "B", 550, "5,5 %")}


def line(qty: int, unit: int, tax_class: str = "reduced", sku: str = "X") -> LineInput:
    return LineInput(sku, f"item {sku}", qty, unit, tax_class)


def gross(lines: list[LineInput]) -> SaleTotals:
    return price_sale(lines, pricing="gross", rates=DE, currency=EUR)


def test_ten_lines_of_one_equal_one_line_of_ten_gross() -> None:
    split = gross([line(1, 450)] * 10)
    merged = gross([line(10, 450)])

    for totals in (split, merged):
        assert totals.total_minor == 4500
        (tax,) = totals.taxes
        assert (tax.gross_minor, tax.tax_minor, tax.net_minor) == (4500, 294, 4206)
        assert (tax.code, tax.label, tax.rate_bp) == ("B", "7 %", 700)


def test_per_line_rounding_would_have_given_a_different_tax() -> None:
    # 4,50 at 7 % has 0,2944 tax: rounded per line that is 0,29 x 10 = 2,90.
    assert gross([line(1, 450)]).taxes[0].tax_minor == 29
    assert gross([line(1, 450)] * 10).taxes[0].tax_minor == 294


def test_net_priced_item_totals_the_same_however_entered() -> None:
    kwargs = dict(pricing="net", rates=FR_REDUCED, currency=EUR)
    split = price_sale([line(1, 360)] * 10, **kwargs)  # type: ignore[arg-type]
    merged = price_sale([line(10, 360)], **kwargs)  # type: ignore[arg-type]

    assert split == SaleTotals(split.lines, merged.taxes, 3800)
    assert merged.total_minor == 3800
    assert merged.lines[0].unit_minor == 380
    (tax,) = merged.taxes
    assert (tax.net_minor, tax.tax_minor, tax.gross_minor) == (3602, 198, 3800)


def test_gross_unit_rounds_half_up_away_from_zero() -> None:
    rate = TaxRate("standard", "A", 1000, "10 %")
    assert gross_unit(5, rate) == 6  # 5,5 -> 6
    assert gross_unit(-5, rate) == -6
    assert gross_unit(4, rate) == 4  # 4,4 -> 4


def test_taxes_are_sorted_by_code_and_carry_zero_rates() -> None:
    totals = gross(
        [line(1, 100, "exempt"), line(2, 1190, "standard"), line(1, 500, "zero")]
    )

    assert [t.code for t in totals.taxes] == ["A", "C", "D"]
    assert totals.taxes[0].tax_minor == 380
    assert totals.taxes[1].tax_minor == totals.taxes[2].tax_minor == 0
    assert totals.total_minor == 2980


def test_priced_line_keeps_identity_and_gross_amount() -> None:
    (priced,) = gross([line(3, 199, "standard", sku="JAM-1")]).lines

    assert priced.sku == "JAM-1" and priced.name == "item JAM-1"
    assert (priced.qty, priced.unit_minor, priced.amount_minor) == (3, 199, 597)
    assert (priced.tax_code, priced.tax_class) == ("A", "standard")


def test_negative_line_mirrors_positive_line() -> None:
    for pricing in ("gross", "net"):
        pos = price_sale(
            [line(1, 360)], pricing=pricing, rates=FR_REDUCED, currency=EUR
        )
        neg = price_sale(
            [line(-1, 360)], pricing=pricing, rates=FR_REDUCED, currency=EUR
        )
        assert neg.total_minor == -pos.total_minor
        assert neg.taxes[0].tax_minor == -pos.taxes[0].tax_minor


def test_empty_sale_totals_zero() -> None:
    assert gross([]) == SaleTotals((), (), 0)


def test_unknown_tax_class_is_named() -> None:
    with pytest.raises(InputError, match="'luxury'") as err:
        gross([line(1, 100, "luxury")])
    assert err.value.field == "tax_class"


@pytest.mark.parametrize("qty", [0, MAX_QTY + 1, -MAX_QTY - 1, True])
def test_qty_out_of_bounds_is_refused(qty: int) -> None:
    with pytest.raises(InputError, match="quantity") as err:
        gross([line(qty, 100)])
    assert err.value.field == "qty"


def test_float_price_is_refused() -> None:
    with pytest.raises(InputError, match="unit price"):
        gross([line(1, 4.5)])  # type: ignore[arg-type]


def test_huge_amounts_are_refused_not_overflowed() -> None:
    with pytest.raises(InputError, match="too large"):
        gross([line(MAX_QTY, MAX_AMOUNT_MINOR)])
    with pytest.raises(InputError, match="out of range"):
        gross([line(1, MAX_AMOUNT_MINOR)] * 2)


def test_one_code_with_two_rates_is_refused() -> None:
    rates = {**DE, "zero": TaxRate("zero", "B", 0, "0 %")}
    with pytest.raises(InputError, match="own code"):
        price_sale(
            [line(1, 1), line(1, 1, "zero")], pricing="gross", rates=rates, currency=EUR
        )


def test_unknown_pricing_mode_is_refused() -> None:
    with pytest.raises(InputError, match="pricing"):
        price_sale([], pricing="list", rates=DE, currency=EUR)  # type: ignore[arg-type]


def test_no_float_anywhere_in_billing() -> None:
    """Money stays in ints and Fractions: no float(), float literal or math.

    Only math's integer-only gcd and lcm may be imported by name.
    """
    for path in Path(daemon.billing.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            assert not (isinstance(node, ast.Name) and node.id == "float"), path
            assert (
                not isinstance(node, ast.Constant) or type(node.value) is not float
            ), path
            if isinstance(node, ast.alias):
                assert node.name not in ("math", "decimal"), path
            if isinstance(node, ast.ImportFrom) and node.module in ("math", "decimal"):
                names = {alias.name for alias in node.names}
                assert node.module == "math" and names <= {"gcd", "lcm"}, path


# ---- properties -------------------------------------------------------------

LINES = st.lists(
    st.builds(
        LineInput,
        sku=st.sampled_from(["a", "b", "c"]),
        name=st.just("n"),
        qty=st.integers(-20, 20).filter(bool),
        unit_minor=st.integers(-100_000, 100_000),
        tax_class=st.sampled_from(sorted(DE)),
    ),
    max_size=25,
)
PRICING = st.sampled_from(["gross", "net"])


def _explode(lines: list[LineInput]) -> list[LineInput]:
    """Return each line as |qty| lines of one unit each."""
    return [
        LineInput(x.sku, x.name, 1 if x.qty > 0 else -1, x.unit_minor, x.tax_class)
        for x in lines
        for _ in range(abs(x.qty))
    ]


@given(LINES, PRICING, st.randoms())
@settings(max_examples=300)
def test_splitting_and_order_never_change_totals(
    lines: list[LineInput], pricing: str, rnd: object
) -> None:
    merged = price_sale(lines, pricing=pricing, rates=DE, currency=EUR)  # type: ignore[arg-type]
    shuffled = _explode(lines)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    split = price_sale(shuffled, pricing=pricing, rates=DE, currency=EUR)  # type: ignore[arg-type]

    assert split.taxes == merged.taxes
    assert split.total_minor == merged.total_minor


@given(LINES, PRICING)
def test_net_plus_tax_is_gross_per_rate(lines: list[LineInput], pricing: str) -> None:
    totals = price_sale(lines, pricing=pricing, rates=DE, currency=EUR)  # type: ignore[arg-type]

    for tax in totals.taxes:
        assert tax.net_minor + tax.tax_minor == tax.gross_minor
        assert abs(tax.tax_minor) <= abs(tax.gross_minor)
    assert totals.total_minor == sum(t.gross_minor for t in totals.taxes)
    assert totals.total_minor == sum(x.amount_minor for x in totals.lines)


@given(
    st.lists(st.tuples(st.integers(1, MAX_QTY), st.integers(0, 10**7)), max_size=5),
    PRICING,
)
def test_positive_carts_have_non_negative_totals(
    raw: list[tuple[int, int]], pricing: str
) -> None:
    lines = [line(q, u, "standard") for q, u in raw]
    totals = price_sale(lines, pricing=pricing, rates=DE, currency=EUR)  # type: ignore[arg-type]

    assert totals.total_minor >= 0
    for tax in totals.taxes:
        assert 0 <= tax.tax_minor <= tax.gross_minor and tax.net_minor >= 0
