"""Tests for daemon.billing.cash and daemon.billing.tenders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.billing.cash import (
    NO_CASH_ROUNDING,
    CashRounding,
    cash_rounding,
    round_cash,
    rounding_difference,
)
from daemon.billing.tenders import Payment, Settlement, Tender, settle
from daemon.errors import InputError
from daemon.money import Currency

CHF = Currency.of("CHF")
CHF_RULE = CashRounding(5, "half_up")


def pay(total: int, *tenders: Tender, rule: CashRounding = CHF_RULE) -> Settlement:
    return settle(total, tenders, rule=rule, currency=CHF)


@pytest.mark.parametrize(
    ("due", "paid"), [(1468, 1470), (1466, 1465), (1463, 1465), (1465, 1465)]
)
def test_chf_cash_rounds_to_five_rappen(due: int, paid: int) -> None:
    done = pay(due, Tender("cash", 2000))

    assert done.payments == (Payment("cash", paid),)
    assert done.rounding_minor == paid - due
    assert done.collected_minor == paid
    assert done.change_minor == 2000 - paid


def test_split_card_and_cash_rounds_only_the_cash() -> None:
    done = pay(1468, Tender("card", 1000, "T-42"), Tender("cash", 500))

    assert done.payments == (Payment("card", 1000, "T-42"), Payment("cash", 470))
    assert done.rounding_minor == 2
    assert done.change_minor == 30


def test_card_only_is_never_rounded() -> None:
    done = pay(1468, Tender("card", 1468))
    assert done.payments == (Payment("card", 1468),) and done.rounding_minor == 0


def test_card_voucher_gift_card_and_cash_in_one_sale() -> None:
    done = pay(
        5000,
        Tender("voucher", 1000, "V-1"),
        Tender("gift_card", 1500, "G-9"),
        Tender("card", 2000),
        Tender("cash", 500),
    )
    assert sum(p.amount_minor for p in done.payments) == 5000
    assert done.change_minor == 0


def test_config_text_builds_the_rule() -> None:
    assert cash_rounding(CHF, "0.05", "half_up") == CHF_RULE
    with pytest.raises(InputError, match="at least one minor unit"):
        cash_rounding(CHF, "0", "half_up")
    with pytest.raises(InputError, match="unknown rounding mode"):
        cash_rounding(CHF, "0.05", "nearest")
    with pytest.raises(InputError, match="step"):
        CashRounding(0)


def test_half_even_mode_and_ten_step() -> None:
    rule = CashRounding(10, "half_even")
    assert [round_cash(a, rule) for a in (1465, 1475, 1466)] == [1460, 1480, 1470]


def test_payout_is_rounded_like_a_payment() -> None:
    done = pay(-1468, Tender("cash", 0))
    assert done.payout and done.payments == (Payment("cash", -1470),)
    assert done.rounding_minor == -2 and done.change_minor == 0

    credit = pay(-250, Tender("voucher", -250, "V-2"))
    assert credit.payments == (Payment("voucher", -250, "V-2"),)


def test_z_report_rounding_difference_nets_out() -> None:
    sales = [pay(a, Tender("cash", 2000)) for a in (1468, 1466, 1463)]
    assert rounding_difference(s.rounding_minor for s in sales) == 2 - 1 + 2


@pytest.mark.parametrize(
    ("tenders", "message"),
    [
        ((Tender("card", 1000),), "4,68 still due"),
        ((Tender("cash", 1000),), "less than the 14,70 due"),
        ((Tender("card", 1500), Tender("cash", 0)), "exceeds the 14,68"),
        ((Tender("voucher", -100), Tender("cash", 2000)), "wrong sign"),
        ((Tender("cash", 1000), Tender("cash", 1000)), "one tender"),
        ((Tender("cheque", 1468),), "unknown tender"),  # type: ignore[arg-type]
        ((Tender("card", 14.68),), "whole minor units"),  # type: ignore[arg-type]
    ],
)
def test_bad_tenders_are_refused(tenders: tuple[Tender, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        pay(1468, *tenders)


def test_payout_takes_no_cash_tendered() -> None:
    with pytest.raises(InputError, match="payout"):
        pay(-100, Tender("cash", 100))


@given(
    st.integers(1, 10**9),
    st.integers(0, 10**9),
    st.integers(1, 100),
    st.sampled_from(["half_up", "half_even", "down", "up"]),
)
def test_rounding_only_ever_touches_the_cash_part(
    total: int, card: int, step: int, mode: str
) -> None:
    card = min(card, total)
    rule = CashRounding(step, mode)  # type: ignore[arg-type]
    tenders = [Tender("card", card)] if card else []
    cash_given = Tender("cash", 2 * 10**9)
    done = settle(total, [*tenders, cash_given], rule=rule, currency=CHF)

    cash = done.payments[-1]
    assert cash.method == "cash" and cash.amount_minor % step == 0
    assert done.payments[:-1] == tuple(Payment("card", card) for _ in tenders)
    assert done.rounding_minor == cash.amount_minor - (total - card)
    assert abs(done.rounding_minor) < step
    assert sum(p.amount_minor for p in done.payments) == done.collected_minor
    assert done.change_minor >= 0


def test_no_rounding_rule_keeps_cash_exact() -> None:
    done = pay(1468, Tender("cash", 1468), rule=NO_CASH_ROUNDING)
    assert done.rounding_minor == 0 and done.change_minor == 0
