"""Tests for daemon.billing.rounding: named rules and largest remainder."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.billing.rounding import (
    ROUNDING_MODES,
    allocate,
    div_round,
    round_fraction,
    round_to_step,
    rounding_mode,
)
from daemon.errors import InputError


@pytest.mark.parametrize(
    ("num", "den", "half_up", "half_even", "down", "up"),
    [
        (5, 2, 3, 2, 2, 3),
        (7, 2, 4, 4, 3, 4),
        (-5, 2, -3, -2, -2, -3),
        (11, 4, 3, 3, 2, 3),
        (9, 4, 2, 2, 2, 3),
        (8, 4, 2, 2, 2, 2),
        (5, -2, -3, -2, -2, -3),
        (0, 7, 0, 0, 0, 0),
    ],
)
def test_div_round_by_rule(
    num: int, den: int, half_up: int, half_even: int, down: int, up: int
) -> None:
    got = [div_round(num, den, m) for m in ("half_up", "half_even", "down", "up")]
    assert got == [half_up, half_even, down, up]


def test_huge_values_stay_exact() -> None:
    big = 10**40 + 5
    assert div_round(big, 10, "half_up") == 10**39 + 1
    assert div_round(big, 10, "half_even") == 10**39
    assert round_fraction(Fraction(big, 10), "down") == 10**39


@pytest.mark.parametrize(
    ("amount", "rounded"), [(1468, 1470), (1466, 1465), (1463, 1465), (-1468, -1470)]
)
def test_round_to_chf_step(amount: int, rounded: int) -> None:
    assert round_to_step(amount, 5, "half_up") == rounded


def test_round_to_step_refuses_zero_step() -> None:
    with pytest.raises(InputError, match="step"):
        round_to_step(100, 0, "half_up")


def test_rounding_mode_names_the_choices() -> None:
    assert rounding_mode("half_even") == "half_even"
    with pytest.raises(InputError, match="half_up, half_even, down, up"):
        rounding_mode("bankers")


def test_allocate_gives_leftovers_to_largest_remainders() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [5, 3, 2]) == [5, 3, 2]
    assert allocate(7, [0, 2, 1]) == [0, 5, 2]  # 4.67 and 2.33: the .67 wins
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(0, [0, 0]) == [0, 0]


def test_allocate_refuses_impossible_splits() -> None:
    with pytest.raises(ValueError, match="zero weights"):
        allocate(1, [0])
    with pytest.raises(ValueError, match="non-negative"):
        allocate(1, [2, -1])


@given(
    st.integers(-(10**15), 10**15),
    st.lists(st.integers(0, 10**12), min_size=1, max_size=20).filter(any),
)
def test_allocate_sums_exactly_and_stays_within_one(
    total: int, weights: list[int]
) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert abs(share - exact) < 1


@given(
    st.integers(-(10**30), 10**30),
    st.integers(1, 10**6),
    st.sampled_from(ROUNDING_MODES),
)
def test_rounding_is_symmetric_and_close(num: int, den: int, mode: str) -> None:
    got = div_round(num, den, mode)  # type: ignore[arg-type]
    assert div_round(-num, den, mode) == -got  # type: ignore[arg-type]
    assert abs(Fraction(num, den) - got) < 1
