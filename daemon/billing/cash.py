"""Cash rounding: the cash part of a payment rounded to the smallest coin.

Only cash is ever rounded, and the difference is booked as its own line
(``rounding_minor``): item prices, tax and card amounts stay exact. The rule
is the stall's (CHF rounds to 0,05; most euro countries do not round, some
round to 0,05), so step and mode come from config, e.g. step 5 and
``half_up``: 14,68 -> 14,70, 14,66 -> 14,65, 14,63 -> 14,65. A payout (a
negative amount) is rounded like the payment it mirrors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.billing.rounding import RoundingMode, round_to_step, rounding_mode
from daemon.errors import InputError
from daemon.money import Currency


@dataclass(frozen=True, slots=True)
class CashRounding:
    """The stall's cash rounding: a step in minor units and a rounding mode."""

    step_minor: int = 1
    mode: RoundingMode = "half_up"

    def __post_init__(self) -> None:
        if type(self.step_minor) is not int or self.step_minor < 1:
            raise InputError(
                f"cash rounding step must be a whole number of minor units >= 1, "
                f"not {self.step_minor!r}",
                field="cash_rounding.step",
            )
        rounding_mode(self.mode)


NO_CASH_ROUNDING = CashRounding()


def cash_rounding(currency: Currency, step: str, mode: str) -> CashRounding:
    """Build the rule from config text, e.g. ('CHF', '0.05', 'half_up')."""
    step_minor = currency.parse(step)
    if step_minor < 1:
        raise InputError(
            f"cash rounding step {step!r} must be at least one minor unit",
            field="cash_rounding.step",
        )
    return CashRounding(step_minor, rounding_mode(mode))


def round_cash(amount_minor: int, rule: CashRounding) -> int:
    """Return the cash amount actually handed over for an exact amount due."""
    if rule.step_minor == 1:  # no rounding (most euro stalls): already whole
        return amount_minor
    return round_to_step(amount_minor, rule.step_minor, rule.mode)


def rounding_difference(rounding_lines_minor: Iterable[int]) -> int:
    """Return the net cash rounding of many sales, as the Z report shows it."""
    return sum(rounding_lines_minor)
