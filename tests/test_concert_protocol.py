"""Exact-bytes tests for Concert V2 framing, built from the published layout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.terminal import concert as c

# 12,50 EUR debit from till 01, answer requested, card, no private data, 'A' 'B'.
# LRC worked by hand: digit low nibbles XOR to 1, spaces cancel, 'A'^'B'^ETX = 0.
REQUEST_1250 = (
    b"\x02"
    + b"01"
    + b"00001250"
    + b"1"
    + b"1"
    + b"0"
    + b"978"
    + b" " * 10
    + b"AB"
    + b"\x03\x01"
)
# The terminal's approval of it: status '0' after the till number.
REPLY_1250_OK = (
    b"\x02"
    + b"01"
    + b"0"
    + b"00001250"
    + b"1"
    + b"1"
    + b"0"
    + b"978"
    + b" " * 10
    + b"AB"
    + b"\x03\x31"
)


def test_request_frame_exact() -> None:
    body = c.encode_request(c.PaymentRequest(1250))
    assert c.encode_frame(body) == REQUEST_1250


def test_reply_frame_exact_and_decoded() -> None:
    reply = c.PaymentReply("01", "0", 1250, "1", "0", "978", " " * 10)
    body = c.encode_reply(reply, c.PaymentRequest(1250))

    assert c.encode_frame(body) == REPLY_1250_OK
    assert c.decode_reply(body) == reply
    assert reply.approved


def test_refused_reply_is_not_approved() -> None:
    body = REPLY_1250_OK[1:-2].replace(b"010", b"017", 1)
    assert not c.decode_reply(body).approved


def test_request_round_trip_for_the_simulator() -> None:
    request = c.PaymentRequest(99, transaction_type=c.TransactionType.CREDIT)
    assert c.decode_request(c.encode_request(request)) == request


def test_session_bytes_in_one_read() -> None:
    stream = b"\x05" + REPLY_1250_OK + b"\x04"
    events = c.ConcertDecoder().feed(stream)

    assert events == [
        c.Control(c.ENQ),
        c.Message(REPLY_1250_OK[1:-2]),
        c.Control(c.EOT),
    ]


def test_parity_bit_is_ignored() -> None:
    with_parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in REQUEST_1250)
    assert c.ConcertDecoder().feed(with_parity) == [c.Message(REQUEST_1250[1:-2])]


def test_bad_lrc_reported() -> None:
    events = c.ConcertDecoder().feed(REQUEST_1250[:-1] + b"\x7f")
    assert events == [c.BadFrame(REQUEST_1250[1:-2], "LRC mismatch")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"01000012501109", "reply must be 29"),
        (REPLY_1250_OK[1:-2] + b" ", "reply must be 29 chars, got 30"),
        (REPLY_1250_OK[1:-2].replace(b"1250", b"12X0"), "amount is not numeric"),
    ],
)
def test_malformed_replies_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(c.ConcertParseError, match=reason):
        c.decode_reply(body)


def test_fields_of_wrong_width_refused() -> None:
    with pytest.raises(ValueError, match="pos_number"):
        c.encode_request(c.PaymentRequest(1, pos_number="1"))


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 99_999_999), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 400), max_size=20),
)
def test_any_split_decodes_same_messages(amounts: list[int], cuts: list[int]) -> None:
    bodies = [c.encode_request(c.PaymentRequest(a)) for a in amounts]
    stream = b"".join(b"\x05" + c.encode_frame(b) + b"\x04" for b in bodies)
    bounds = sorted({x % (len(stream) + 1) for x in cuts} | {0, len(stream)})
    decoder = c.ConcertDecoder()
    events = [
        e
        for s, t in zip(bounds, bounds[1:], strict=False)
        for e in decoder.feed(stream[s:t])
    ]

    assert [e.body for e in events if isinstance(e, c.Message)] == bodies
    assert sum(isinstance(e, c.Control) for e in events) == 2 * len(bodies)
