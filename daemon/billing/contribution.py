"""The optional climate contribution a customer can add at checkout.

A contribution is money given to a named project at a stated price per kg
CO2e. It is a line of the sale and nothing else: it is never subtracted from
the carbon estimate, and no text it produces may call the sale "neutral" or
"offset" (EU rules on green claims forbid such claims from September 2026).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from daemon.billing.pricing import LineInput
from daemon.billing.rounding import round_fraction
from daemon.errors import InputError

FORBIDDEN_CLAIMS = ("neutral", "offset", "compensat", "climate positive", "net zero")


@dataclass(frozen=True, slots=True)
class ContributionOffer:
    """A named project and its stated price per kg CO2e, from config."""

    project: str
    price_per_kg_minor: int
    tax_class: str = "exempt"

    def __post_init__(self) -> None:
        check_claim_free(self.project)
        if type(self.price_per_kg_minor) is not int or self.price_per_kg_minor < 1:
            raise InputError(
                "contribution price per kg CO2e must be a positive whole amount, "
                f"not {self.price_per_kg_minor!r}",
                field="contribution.price_per_kg",
            )


def contribution_minor(offer: ContributionOffer, co2e_kg: Fraction) -> int:
    """Return the contribution for an estimate: kg x price, rounded half_up."""
    if co2e_kg < 0:
        raise InputError("a carbon estimate is never negative", field="co2e")
    return round_fraction(co2e_kg * offer.price_per_kg_minor, "half_up")


def contribution_text(offer: ContributionOffer) -> str:
    """Return the line text: a contribution to a named project, not a claim."""
    return f"Climate contribution to {offer.project}"


def contribution_line(offer: ContributionOffer, co2e_kg: Fraction) -> LineInput:
    """Return the contribution as one sale line in the offer's tax class."""
    amount = contribution_minor(offer, co2e_kg)
    return LineInput(
        "contribution", contribution_text(offer), 1, amount, offer.tax_class
    )


def check_claim_free(text: str) -> None:
    """Refuse text that makes a neutrality or offset claim."""
    lowered = text.lower()
    for word in FORBIDDEN_CLAIMS:
        if word in lowered:
            raise InputError(
                f"{text!r} makes a green claim ({word!r}) a receipt must not make",
                field="contribution.project",
            )
