"""Tests for daemon.billing.packaging and daemon.billing.contribution."""

from __future__ import annotations

from fractions import Fraction

import pytest

from daemon.billing.contribution import (
    ContributionOffer,
    contribution_line,
    contribution_minor,
)
from daemon.billing.packaging import (
    PackagedQty,
    PackagingType,
    deposit_return_line,
    packaging_lines,
)
from daemon.billing.pricing import LineInput, TaxRate, price_sale
from daemon.errors import InputError
from daemon.money import Currency

EUR = Currency.of("EUR")
RATES = {
    "standard": TaxRate("standard", "A", 1900, "19 %"),
    "reduced": TaxRate("reduced", "B", 700, "7 %"),
    "exempt": TaxRate("exempt", "D", 0, "exempt"),
}
TYPES = {
    "none": PackagingType("none", "No packaging"),
    "cup": PackagingType(
        "cup",
        "Single-use cup",
        fee_minor=20,
        own_container_credit_minor=10,
        material="paper_pe",
        mass_g=12,
    ),
    "bottle": PackagingType(
        "bottle", "Glass bottle", deposit_minor=25, material="glass", mass_g=350
    ),
}


def test_fee_deposit_and_credit_lines_per_type() -> None:
    lines = packaging_lines(
        [
            PackagedQty("cup", 2),
            PackagedQty("bottle", 3),
            PackagedQty("cup", 1, own_container=True),
            PackagedQty("none", 4),
        ],
        TYPES,
    )

    assert lines == (
        LineInput("deposit:bottle", "Glass bottle deposit", 3, 25, "exempt"),
        LineInput("fee:cup", "Single-use cup fee", 2, 20, "standard"),
        LineInput(
            "credit:cup", "Single-use cup own container credit", 1, -10, "standard"
        ),
    )


def test_packaging_lines_are_priced_with_the_goods() -> None:
    goods = [LineInput("coffee", "Coffee", 2, 300, "reduced")]
    extra = packaging_lines([PackagedQty("cup", 2)], TYPES)
    totals = price_sale([*goods, *extra], pricing="gross", rates=RATES, currency=EUR)

    assert totals.total_minor == 640
    assert {t.code: t.gross_minor for t in totals.taxes} == {"A": 40, "B": 600}


def test_deposit_return_is_a_negative_line() -> None:
    back = deposit_return_line("bottle", 2, TYPES)
    assert back == LineInput(
        "deposit-return:bottle", "Deposit return Glass bottle", -2, 25, "exempt"
    )
    totals = price_sale([back], pricing="gross", rates=RATES, currency=EUR)
    assert totals.total_minor == -50


def test_unknown_packaging_and_bad_values_are_refused() -> None:
    with pytest.raises(InputError, match="'crate'"):
        packaging_lines([PackagedQty("crate", 1)], TYPES)
    with pytest.raises(InputError, match="no deposit"):
        deposit_return_line("cup", 1, TYPES)
    with pytest.raises(InputError, match="quantity"):
        packaging_lines([PackagedQty("cup", 0)], TYPES)
    with pytest.raises(InputError, match="non-negative"):
        PackagingType("bag", "Bag", fee_minor=-5)


def test_contribution_is_kg_times_stated_price() -> None:
    offer = ContributionOffer("Moorland restoration Eifel", 3)  # 0,03 per kg
    assert contribution_minor(offer, Fraction(1234, 100)) == 37  # 12,34 kg
    assert contribution_minor(offer, Fraction(1, 2)) == 2  # 1,5 -> 2, half_up

    line = contribution_line(offer, Fraction(10))
    assert line == LineInput(
        "contribution",
        "Climate contribution to Moorland restoration Eifel",
        1,
        30,
        "exempt",
    )


@pytest.mark.parametrize("project", ["Carbon Neutral Fund", "Offset Partners"])
def test_contribution_never_claims_neutrality(project: str) -> None:
    with pytest.raises(InputError, match="green claim"):
        ContributionOffer(project, 3)


def test_contribution_refuses_negative_estimate() -> None:
    with pytest.raises(InputError, match="never negative"):
        contribution_minor(ContributionOffer("Hedges", 3), Fraction(-1))
