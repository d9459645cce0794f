"""Tests for daemon.billing.carbon: the estimate, its range and its record."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.billing.carbon import (
    METHOD_ID,
    METHOD_VERSION,
    CarbonEstimate,
    CarbonLine,
    SpendConversion,
    carbon_record,
    estimate,
    estimate_from_record,
    estimate_to_json,
    format_co2e,
    receipt_lines,
)
from daemon.billing.default_factors import default_factors
from daemon.billing.factors import EmissionFactor, factor_table, load_agribalyse
from daemon.errors import InputError
from daemon.money import Currency

EUR = Currency.of("EUR")
TO_USD_2021 = SpendConversion("EUR", 2021, Fraction("1.18"))
AGRIBALYSE_CSV = (
    Path(__file__).resolve().parents[2]
    / "shared/data/carbon/agribalyse-3.1_synthese_ADEME.csv"
)
# A test fixture, not a cited figure: packaging materials have no default.
GLASS = EmissionFactor(
    "test:glass",
    "test fixture",
    "0",
    "glass",
    "Glass",
    "mass",
    Fraction("0.9"),
    Fraction(1, 5),
    "fixture",
)
TABLE = factor_table([*default_factors(), GLASS])
HONEY = "agribalyse-3.1:31008"
SOAP = "epa-sc-1.2:325611"


def run(*lines: CarbonLine) -> CarbonEstimate:
    return estimate(lines, TABLE, conversion=TO_USD_2021, currency=EUR)


def test_known_agribalyse_product_at_known_mass_from_the_shared_file() -> None:
    official = factor_table(load_agribalyse(AGRIBALYSE_CSV).factors)
    crème = "agribalyse-3.1:39213"  # Crème brûlée, 2.18 kg CO2e/kg, DQR 1.24
    done = estimate(
        [CarbonLine("CB-1", 3, crème, mass_g=125)],
        official,
        conversion=TO_USD_2021,
        currency=EUR,
    )

    assert done.total_kg == Fraction("2.18") * Fraction(375, 1000)
    assert done.low_kg == done.total_kg * Fraction(9, 10)
    assert done.high_kg == done.total_kg * Fraction(11, 10)
    assert done.datasets == (("ADEME Agribalyse", "3.1"),)


def test_mass_goods_plus_packaging_material() -> None:
    done = run(
        CarbonLine(
            "HONEY-500",
            2,
            HONEY,
            mass_g=500,
            packaging_factor_id="test:glass",
            packaging_mass_g=250,
        )
    )
    (line,) = done.lines
    assert line.goods_kg == Fraction("1.57")  # 1.57 kg/kg x 0.5 kg x 2
    assert line.packaging_kg == Fraction("0.45")  # 0.9 x 0.25 x 2
    assert done.total_kg == Fraction("2.02")
    # Honey ±30 % (DQR 2.53) and glass ±20 % add up linearly.
    assert done.high_kg - done.total_kg == Fraction("0.471") + Fraction("0.09")


def test_spend_based_line_uses_the_amount_without_vat() -> None:
    done = run(CarbonLine("SOAP", 1, SOAP, gross_minor=1190, rate_bp=1900))
    # 11,90 gross at 19 % is 10,00 net = 11.80 USD(2021) x 0.405 kg/USD.
    assert done.total_kg == Fraction("0.405") * Fraction("11.8")
    assert done.high_kg == done.total_kg * Fraction(3, 2)
    assert done.datasets == (("US EPA Supply Chain GHG Emission Factors", "1.2"),)


def test_lines_sum_unrounded() -> None:
    lines = [CarbonLine("TEA", 1, "agribalyse-3.1:18020", mass_g=1)] * 3
    done = run(*lines)
    assert done.total_kg == 3 * Fraction("0.0436") / 1000
    assert format_co2e(done.total_kg) == "0 g"


@pytest.mark.parametrize(
    ("kg", "text"),
    [
        ("0.8504", "850 g"),
        ("0.0005", "1 g"),
        ("0.9994", "999 g"),
        ("0.9996", "1,0 kg"),
        ("1.25", "1,3 kg"),
        ("12.34", "12,3 kg"),
        ("0", "0 g"),
    ],
)
def test_printed_figures_round_half_up(kg: str, text: str) -> None:
    assert format_co2e(Fraction(kg)) == text


def test_receipt_block_names_method_data_and_no_offsets() -> None:
    done = run(
        CarbonLine("HONEY", 1, HONEY, mass_g=500),
        CarbonLine("SOAP", 1, SOAP, gross_minor=119, rate_bp=1900),
    )
    text = receipt_lines(done)

    # 0.785 kg ±30 % + 0.4779 kg ±50 %
    assert text[0] == "Est. footprint 1,3 kg CO2e"
    assert text[1] == "(range 788 g to 1,7 kg)"
    assert text[2] == f"Method {METHOD_ID} {METHOD_VERSION}"
    assert text[3] == (
        "Data: ADEME Agribalyse 3.1; US EPA Supply Chain GHG Emission Factors 1.2"
    )
    assert text[4] == "No offsets netted."
    assert not any("neutral" in t.lower() for t in text)


def test_recomputing_from_the_stored_record_gives_the_same_bytes() -> None:
    lines = [
        CarbonLine(
            "HONEY",
            2,
            HONEY,
            mass_g=500,
            packaging_factor_id="test:glass",
            packaging_mass_g=250,
        ),
        CarbonLine("SOAP", 3, SOAP, gross_minor=1785, rate_bp=1900, defaulted=True),
    ]
    first = estimate(lines, TABLE, conversion=TO_USD_2021, currency=EUR)
    stored = json.dumps(carbon_record(lines, TABLE, TO_USD_2021, EUR))
    again = estimate_from_record(json.loads(stored))

    assert estimate_to_json(again) == estimate_to_json(first)
    assert receipt_lines(again) == receipt_lines(first)
    assert again.table_hash == TABLE.version_hash
    assert len(json.loads(stored)["factors"]) == 3  # only the factors used


def test_record_of_another_method_version_is_refused() -> None:
    record = carbon_record([], TABLE, TO_USD_2021, EUR)
    record["method"] = [METHOD_ID, "0.9"]
    with pytest.raises(InputError, match="method"):
        estimate_from_record(record)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (CarbonLine("H", 1, HONEY), "no net mass"),
        (CarbonLine("H", 0, HONEY, mass_g=1), "at least 1"),
        (CarbonLine("X", 1, "agribalyse-3.1:0"), "no emission factor"),
        (CarbonLine("S", 1, SOAP, gross_minor=-1), "negative"),
        (CarbonLine("H", 1, HONEY, mass_g=1, packaging_factor_id=SOAP), "not mass"),
    ],
)
def test_bad_lines_are_refused(line: CarbonLine, message: str) -> None:
    with pytest.raises(InputError, match=message):
        run(line)


def test_conversion_must_match_currency_and_price_year() -> None:
    line = CarbonLine("S", 1, SOAP, gross_minor=100)
    with pytest.raises(InputError, match="CHF"):
        estimate([line], TABLE, conversion=TO_USD_2021, currency=Currency.of("CHF"))
    with pytest.raises(InputError, match="2021 USD"):
        estimate(
            [line],
            TABLE,
            conversion=SpendConversion("EUR", 2024, Fraction(1)),
            currency=EUR,
        )


@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.integers(0, 5000), st.integers(0, 10**6)),
        max_size=10,
    )
)
def test_range_brackets_the_estimate_and_order_does_not_matter(
    raw: list[tuple[int, int, int]],
) -> None:
    lines = [
        CarbonLine(
            str(i), q, HONEY if i % 2 else SOAP, mass_g=m, gross_minor=g, rate_bp=700
        )
        for i, (q, m, g) in enumerate(raw)
    ]
    done = run(*lines)
    backwards = run(*reversed(lines))

    assert 0 <= done.low_kg <= done.total_kg <= done.high_kg
    assert (backwards.total_kg, backwards.low_kg) == (done.total_kg, done.low_kg)


def test_a_record_written_before_the_integer_rewrite_recomputes_byte_for_byte() -> None:
    """A 1.0 record and its stored estimate, as the Fraction-based code wrote them.

    The journal keeps sales priced by every release; the integer arithmetic
    (one denominator per line, coefficients cached per factor table) must give
    the very bytes older releases stored, and the same receipt text.
    """
    golden = json.loads(
        (Path(__file__).parent / "golden/carbon-1.0-record.json").read_text("utf-8")
    )
    again = estimate_from_record(golden["record"])

    assert estimate_to_json(again) == golden["estimate"]
    assert list(receipt_lines(again)) == golden["receipt"]


def test_cached_coefficients_follow_the_table_they_came_from() -> None:
    """A table built from other factors (a new version) never reuses old figures."""
    line = CarbonLine("HONEY", 1, HONEY, mass_g=1000)
    first = run(line)
    doubled = factor_table(
        [
            EmissionFactor(
                HONEY, "test", "0", "x", "Honey", "mass", Fraction("3.14"),
                Fraction(3, 10), "fixture",
            )
        ]
    )
    again = estimate([line], doubled, conversion=TO_USD_2021, currency=EUR)

    assert first.total_kg == Fraction("1.57")
    assert again.total_kg == Fraction("3.14")
    assert run(line).total_kg == Fraction("1.57")
