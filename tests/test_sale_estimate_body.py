"""The sale event's carbon estimate, built as a dict, is its stored text exactly."""

from __future__ import annotations

import json
from fractions import Fraction

from daemon.billing.carbon import (
    CarbonLine,
    SpendConversion,
    estimate,
    estimate_body,
    estimate_to_json,
)
from daemon.billing.default_factors import default_factors
from daemon.billing.factors import factor_table
from daemon.journal.canonical import canonical_bytes
from daemon.money import Currency

EUR = Currency.of("EUR")
TABLE = factor_table(default_factors())


def _estimate(*lines: CarbonLine) -> object:
    return estimate(lines, TABLE, conversion=SpendConversion("EUR", 2021,
                                                             Fraction("1.18")),
                    currency=EUR)


def test_body_encodes_to_the_estimate_text() -> None:
    done = _estimate(
        CarbonLine("SOAP", 3, "epa-sc-1.2:325611", gross_minor=1190, rate_bp=1900),
        CarbonLine("HONIG", 2, "epa-sc-1.2:325611", gross_minor=7, rate_bp=700,
                   defaulted=True),
        CarbonLine("Ä-ß \"x\"", 1, "epa-sc-1.2:325611", gross_minor=0))
    body = estimate_body(done)
    text = estimate_to_json(done)
    assert canonical_bytes(body) == text.encode("utf-8")
    assert body == json.loads(text)
    assert estimate_body(done) is not body  # each sale event gets its own


def test_empty_estimate_too() -> None:
    done = _estimate()
    assert canonical_bytes(estimate_body(done)) == estimate_to_json(done).encode()
