"""DLE EOT status: request bytes, answer parsing, garbled-line detection."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from device.printer import status
from device.printer.status import PrinterStatus, StatusKind


def _answers(*values: int) -> dict[int, bytes]:
    pairs = zip(StatusKind, values, strict=True)
    return {kind: bytes([value]) for kind, value in pairs}


def test_request_is_dle_eot_n() -> None:
    assert status.request(StatusKind.PAPER) == b"\x10\x04\x04"


def test_idle_printer_is_online_and_clean() -> None:
    parsed = status.parse(_answers(0x12, 0x12, 0x12, 0x12))

    assert parsed.online is True and parsed.answered
    assert not (parsed.cover_open or parsed.paper_end or parsed.error)


def test_paper_end_and_cover_open() -> None:
    parsed = status.parse(_answers(0x1A, 0x36, 0x12, 0x7E))

    assert parsed.online is False
    assert parsed.cover_open and parsed.paper_end and parsed.paper_near_end


def test_near_end_alone_keeps_printing() -> None:
    parsed = status.parse(_answers(0x12, 0x12, 0x12, 0x1E))

    assert parsed.online and parsed.paper_near_end and not parsed.paper_end


def test_errors() -> None:
    parsed = status.parse(_answers(0x1A, 0x52, 0x32, 0x12))

    assert parsed.error is True


def test_missing_answers_say_nothing() -> None:
    parsed = status.parse({})

    assert parsed.online is None and parsed.missing == 4 and not parsed.answered
    assert not status.looks_misconfigured(parsed)


def test_one_garbled_byte_is_advice_only() -> None:
    parsed = status.parse(_answers(0x12, 0xFA, 0x12, 0x12))

    assert parsed.garbled == 1 and parsed.online is True
    assert not status.looks_misconfigured(parsed)


def test_garbled_answers_mean_misconfigured() -> None:
    parsed = status.parse(
        {1: b"\xfa", 2: b"\x00", 3: b"\x86\x86", 4: b"\xff"}
    )

    assert parsed.garbled == 4 and status.looks_misconfigured(parsed)


@given(st.sampled_from(list(StatusKind)), st.booleans(), st.booleans(), st.booleans())
def test_encode_parse_round_trip(
    kind: StatusKind, online: bool, paper_end: bool, cover: bool
) -> None:
    state = PrinterStatus(online=online, paper_end=paper_end, cover_open=cover)

    answer = status.encode_answer(kind, state)
    assert len(answer) == 1 and status.is_status_byte(answer[0])


@given(st.dictionaries(st.integers(0, 8), st.binary(max_size=4)))
def test_parse_never_raises(answers: dict[int, bytes]) -> None:
    status.parse(answers)
