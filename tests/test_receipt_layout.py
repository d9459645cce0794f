"""Receipt layout: the text pages show is the text the printer prints."""

from __future__ import annotations

import dataclasses

import pytest

from daemon.sales.receipt import (
    REPRINT_BANNER,
    ReceiptLine,
    layout,
    printable,
    render_text,
)
from tests.receipt_samples import market_receipt


@pytest.mark.parametrize("columns", [20, 32, 42, 48, 64])
def test_no_line_is_wider_than_the_paper(columns: int) -> None:
    lines = layout(market_receipt(), columns)

    assert max(len(line.text) for line in lines) <= columns


def test_amounts_are_formatted_with_the_currency() -> None:
    text = render_text(market_receipt(), 42)

    assert "TOTAL EUR" in text and text.count("43,20") == 1
    assert "Cash" in text and "50,00" in text
    assert "Change" in text and "6,80" in text
    assert "  3 x 6,90" in text and "20,70 B" in text


def test_tax_rows_show_net_tax_and_gross_per_rate() -> None:
    text = render_text(market_receipt(), 42).splitlines()

    row_a = next(line for line in text if line.startswith("A 19%"))
    row_b = next(line for line in text if line.startswith("B 7%"))
    assert row_a.split()[2:] == ["15,13", "2,87", "18,00"]
    assert row_b.split()[2:] == ["23,55", "1,65", "25,20"]


def test_total_is_bold_and_double_height() -> None:
    total = next(line for line in layout(market_receipt(), 42) if "TOTAL" in line.text)

    assert total.bold and total.double_height


def test_header_is_centered_by_padding() -> None:
    first = layout(market_receipt(), 42)[0]

    assert first.centered and first.text.strip() == "Hofladen Élise"
    assert len(first.text) - len(first.text.lstrip()) == (42 - 14) // 2


def test_reprint_is_marked_at_top_and_bottom() -> None:
    lines = layout(market_receipt(reprint=True), 42)

    assert REPRINT_BANNER in lines[0].text and REPRINT_BANNER in lines[-1].text
    assert REPRINT_BANNER not in render_text(market_receipt(), 42)


def test_long_names_wrap_and_keep_the_amount_on_the_last_line() -> None:
    long = ReceiptLine(1, "Sehr langer Name " * 6, 100, 100, "A")
    receipt = dataclasses.replace(market_receipt(), lines=(long,))

    lines = [line.text for line in layout(receipt, 32)]
    with_amount = [text for text in lines if text.endswith("1,00 A")]
    assert len(with_amount) == 1 and with_amount[0].startswith("langer Name ")
    assert all(len(text) <= 32 for text in lines)


def test_control_characters_cannot_reach_the_printer() -> None:
    hostile = ReceiptLine(1, "Tea\x1bi\x1dV\x00\u202eevil", 100, 100, "A")
    receipt = dataclasses.replace(market_receipt(), lines=(hostile,))

    text = render_text(receipt, 42, codepage="cp858")
    assert "\x1b" not in text and "\x1d" not in text and "\x00" not in text
    assert "Tea?i?V?evil" in text


def test_codepage_stand_ins_are_part_of_the_text() -> None:
    assert printable("Łódź – 5 €", "cp437") == ("Lódz - 5 EUR", ("Ł", "ź", "–", "€"))
    assert printable("Crème brûlée €", "cp858") == ("Crème brûlée €", ())
    assert printable("日本", "cp858") == ("??", ("日", "本"))


def test_text_is_unicode_without_a_codepage() -> None:
    text = render_text(market_receipt(), 42)

    assert "Crème brûlée" in text and "€" in text and text.endswith("\n")
