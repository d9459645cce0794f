"""The simulator's ESC/POS decoder: other implementations' streams, hostile bytes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sales.receipt import render_text
from device.printer.escpos import encode_receipt
from device.printer.settings import PrinterSettings
from device.sim.escpos_decoder import (
    MAX_LINE_CHARS,
    Cut,
    EscposDecoder,
    Feed,
    Init,
    Skipped,
    StatusRequest,
    TextLine,
    decode,
    text_lines,
)
from tests.receipt_samples import market_receipt

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "escpos"
GOLDEN = sorted((DATA / "escpos-php_golden").glob("*.bin"))


def _collapse_blank_runs(lines: list[str]) -> list[str]:
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return kept


def test_the_shared_streams_are_there() -> None:
    assert len(GOLDEN) >= 12


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_every_shared_stream_decodes_to_text(path: Path) -> None:
    events = decode(path.read_bytes())

    assert isinstance(events[0], Init)
    text = "\n".join(text_lines(events))
    assert text.strip()  # unifont-print-buffer.bin is only a few glyph codes
    assert "\x1b" not in text and "\x1d" not in text


def test_receipt_with_logo_matches_esc2text() -> None:
    events = decode((DATA / "escpos-php_golden" / "receipt-with-logo.bin").read_bytes())
    expected = (DATA / "escpos-tools" / "receipt-with-logo.esc2text.expected.txt")

    # esc2text shows each feed command as a single blank line: compare with
    # runs of blank lines collapsed, everything else exactly.
    got = _collapse_blank_runs(text_lines(events))
    assert got == _collapse_blank_runs(expected.read_text().splitlines())
    assert any(isinstance(e, Skipped) and e.length == 8978 for e in events)
    assert isinstance(events[-1], Cut)


def test_code_pages_switch_mid_line() -> None:
    data = (DATA / "escpos-php_golden" / "character-encodings.bin").read_bytes()

    text = "\n".join(text_lines(decode(data)))
    assert "Quizdeltagerne spiste jordbær med fløde" in text
    assert "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg." in text
    assert "Pchnąć w tę łódź jeża lub ośm skrzyń fig." in text
    assert "В чащах юга жил бы цитрус?" in text


def test_our_receipt_decodes_to_its_text() -> None:
    receipt = market_receipt()
    data = encode_receipt(receipt, PrinterSettings(port="/dev/null"))

    events = decode(data)
    lines = text_lines([e for e in events if not isinstance(e, Feed)])
    assert "\n".join(lines) + "\n" == render_text(receipt, 42, codepage="cp858")
    assert isinstance(events[-1], Cut) and events[-1].command == "gs_v"


def test_styles_are_noted() -> None:
    events = decode(b"\x1b@\x1bE\x01bold\n\x1b!\x30big\n\x1bE\x00\x1b!\x00plain\n")

    bold, big, plain = [e for e in events if isinstance(e, TextLine)]
    assert bold.bold and big.double_height and big.double_width
    assert not (plain.bold or plain.double_height)


def test_status_requests_and_cuts_are_events() -> None:
    events = decode(b"\x10\x04\x01\x10\x04\x04x\n\x1bd\x03\x1bi\x1bm\x1dV\x41\x03")

    assert [e for e in events if not isinstance(e, TextLine)] == [
        StatusRequest(1), StatusRequest(4), Feed(3), Cut("esc_i"), Cut("esc_m"),
        Cut("gs_v"),
    ]


def test_init_clears_the_print_buffer() -> None:
    assert text_lines(decode(b"lost\x1b@kept\n")) == ["kept"]


def test_huge_declared_payload_is_skipped_without_buffering() -> None:
    decoder = EscposDecoder()
    header = b"\x1d8L" + (2**31).to_bytes(4, "little")

    events = decoder.feed(header)
    for _ in range(64):
        assert decoder.feed(b"\x00" * 65536) == []
    assert events == [Skipped("GS 8", 2**31)]
    assert len(decoder._buf) == 0


def test_endless_line_is_cut_into_bounded_lines() -> None:
    events = decode(b"A" * (MAX_LINE_CHARS * 3 + 5))

    assert [len(e.text) for e in events if isinstance(e, TextLine)] == [
        MAX_LINE_CHARS, MAX_LINE_CHARS, MAX_LINE_CHARS, 5
    ]


def test_barcode_without_terminator_is_bounded() -> None:
    events = decode(b"\x1dk\x04" + b"1" * 1000 + b"\nok\n")

    assert "ok" in text_lines(events)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    decode(data)


_PIECES = st.sampled_from(
    [b"\x1b", b"\x1d", b"\x1c", b"\x10", b"\x04", b"(", b"k", b"v0", b"L", b"&",
     b"*", b"\x00", b"\xff", b"\n", b"t", b"\x13", b"abc", b"V", b"8", b"D"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_PIECES, st.binary(max_size=8)), max_size=200),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_pieces_decode_like_the_whole(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    decoder = EscposDecoder()
    events: list[object] = []
    pos = 0
    for size in itertools.cycle(cuts):
        if pos >= len(data):
            break
        events += decoder.feed(data[pos : pos + size])
        pos += size
    events += decoder.flush()

    assert events == decode(data)
