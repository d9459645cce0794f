"""Named rounding rules over exact integers and fractions.

Every rule is symmetric about zero: rounding -x gives -(rounding x). A refund or
a deposit return is then rounded exactly like the sale it mirrors.

- ``half_up``: to the nearest; a tie goes away from zero (commercial rounding).
- ``half_even``: to the nearest; a tie goes to the even neighbour (banker's).
- ``down``: toward zero (truncate).
- ``up``: away from zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Literal, get_args

from daemon.errors import InputError

RoundingMode = Literal["half_up", "half_even", "down", "up"]
ROUNDING_MODES: tuple[str, ...] = get_args(RoundingMode)


def rounding_mode(text: str) -> RoundingMode:
    """Return the rounding mode named by a config value, or raise InputError."""
    if text not in ROUNDING_MODES:
        choices = ", ".join(ROUNDING_MODES)
        raise InputError(f"unknown rounding mode {text!r}; use one of {choices}")
    return text  # type: ignore[return-value]


def div_round(numerator: int, denominator: int, mode: RoundingMode) -> int:
    """Return numerator / denominator rounded to an integer by the named rule."""
    if mode == "half_up" and numerator >= 0 and denominator > 0:
        # Tax per rate and grams of CO2e, several times a sale: no sign to
        # handle, and a half or more of the denominator left over rounds up,
        # exactly what _carry answers for half_up.
        quotient, remainder = divmod(numerator, denominator)
        return quotient + (2 * remainder >= denominator)
    if denominator == 0:
        raise ZeroDivisionError("div_round by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    return sign * (quotient + _carry(quotient, remainder, denominator, mode))


def round_fraction(value: Fraction, mode: RoundingMode) -> int:
    """Return an exact fraction rounded to an integer by the named rule."""
    return div_round(value.numerator, value.denominator, mode)


def round_to_step(amount: int, step: int, mode: RoundingMode) -> int:
    """Round an integer amount to a multiple of step (e.g. 5 for CHF 0,05)."""
    if step <= 0:
        raise InputError(f"rounding step must be positive, not {step}")
    return div_round(amount, step, mode) * step


def _carry(quotient: int, remainder: int, denominator: int, mode: RoundingMode) -> int:
    """Return 1 when the magnitude rounds up, else 0."""
    if remainder == 0 or mode == "down":
        return 0
    if mode == "up":
        return 1
    twice = 2 * remainder
    if twice != denominator:
        return int(twice > denominator)
    if mode == "half_up":
        return 1
    return quotient % 2  # half_even: an odd quotient moves to the even one above


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split total over weights proportionally by the largest-remainder rule.

    Each share starts as its proportional part rounded toward zero; the minor
    units left over go one each to the largest remainders, ties to the earlier
    weight. The shares always sum to total exactly. Weights must be >= 0.
    """
    if weights and min(weights) < 0:
        raise ValueError("allocation weights must be non-negative")
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError(f"cannot allocate {total} over zero weights")
        return [0] * len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    shares = []
    remainders = []
    for weight in weights:
        share, remainder = divmod(magnitude * weight, whole)
        shares.append(share)
        remainders.append(remainder)
    left = magnitude - sum(shares)
    if left:
        # A stable sort keeps equal remainders in order, even reversed.
        ranked = sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)
        for i in ranked[:left]:
            shares[i] += 1
    return shares if sign == 1 else [-s for s in shares]
