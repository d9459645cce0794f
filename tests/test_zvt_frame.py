"""Exact-bytes and property tests for the ZVT serial framing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.terminal.zvt_frame import (
    AckReceived,
    ApduReceived,
    BadFrame,
    FrameDecoder,
    FrameEvent,
    Garbage,
    NakReceived,
    crc16_kermit,
    encode_frame,
    frame_crc,
)
from tests.test_zvt_data import Vector, serial_frames


def apdus(events: list[FrameEvent]) -> list[bytes]:
    """Return the APDUs of the valid frames among ``events``."""
    return [e.apdu for e in events if isinstance(e, ApduReceived)]


def test_crc16_kermit_check_value() -> None:
    assert crc16_kermit(b"123456789") == 0x2189


def test_ack_apdu_frame_from_issue() -> None:
    assert encode_frame(bytes.fromhex("800000")) == bytes.fromhex(
        "10 02 80 00 00 10 03 F5 1F"
    )


def test_authorisation_frame_from_issue() -> None:
    apdu = bytes.fromhex("06 01 07 04 00 00 00 00 01 90")
    assert encode_frame(apdu) == bytes.fromhex(
        "10 02 06 01 07 04 00 00 00 00 01 90 10 03 76 57"
    )


@pytest.mark.parametrize("vector", serial_frames(), ids=lambda v: v.source)
def test_ecrterm_serial_frames_exact(vector: Vector) -> None:
    decoded = FrameDecoder().feed(vector.raw)

    assert len(decoded) == 1
    assert isinstance(decoded[0], ApduReceived)
    assert encode_frame(decoded[0].apdu) == vector.raw


def test_amount_containing_dle_is_stuffed_and_round_trips() -> None:
    # 10,10 EUR: the BCD amount holds two 0x10 bytes.
    apdu = bytes.fromhex("06 01 07 04 00 00 00 00 10 10")
    frame = encode_frame(apdu)

    assert frame[2:-4] == bytes.fromhex("06 01 07 04 00 00 00 00 10 10 10 10")
    assert apdus(FrameDecoder().feed(frame)) == [apdu]


def _apdu_whose_crc_contains_dle() -> bytes:
    for cents in range(1, 100_000):
        apdu = bytes.fromhex("060107040000") + cents.to_bytes(4, "big")
        if 0x10 in frame_crc(apdu):
            return apdu
    raise AssertionError("no amount gives a CRC byte 0x10")


def test_crc_byte_equal_to_dle_is_not_stuffed() -> None:
    apdu = _apdu_whose_crc_contains_dle()
    frame = encode_frame(apdu)

    assert frame.endswith(frame_crc(apdu))
    assert apdus(FrameDecoder().feed(frame)) == [apdu]


def test_ack_and_next_frame_in_one_read() -> None:
    data = b"\x06" + encode_frame(b"\x80\x00\x00") + b"\x15"
    events = FrameDecoder().feed(data)

    assert events == [AckReceived(), ApduReceived(b"\x80\x00\x00"), NakReceived()]


def test_bad_crc_is_reported_not_delivered() -> None:
    frame = bytearray(encode_frame(b"\x80\x00\x00"))
    frame[-1] ^= 0xFF
    events = FrameDecoder().feed(bytes(frame))

    assert events == [BadFrame(b"\x80\x00\x00", "CRC mismatch")]


def test_noise_then_frame() -> None:
    events = FrameDecoder().feed(b"\xaa\x10\x41" + encode_frame(b"\x06\x1e\x01\x6c"))

    assert isinstance(events[0], Garbage)
    assert apdus(events) == [b"\x06\x1e\x01\x6c"]


def test_frame_restarted_midway_keeps_the_second() -> None:
    torn = encode_frame(b"\x04\xff\x01\x0a")[:5]
    events = FrameDecoder().feed(torn + encode_frame(b"\x06\x0f\x00"))

    assert isinstance(events[0], Garbage)
    assert apdus(events) == [b"\x06\x0f\x00"]


def test_decoder_reports_idle_only_between_frames() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"\x06\x0f\x00")[:4])
    assert not decoder.idle
    decoder.feed(encode_frame(b"\x06\x0f\x00")[4:])
    assert decoder.idle


_apdu_bytes = st.binary(min_size=3, max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(_apdu_bytes, min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
    acks=st.lists(st.booleans(), max_size=8),
)
def test_any_split_decodes_same_apdus(
    payloads: list[bytes], cuts: list[int], acks: list[bool]
) -> None:
    stream = b"".join(
        (b"\x06" if i < len(acks) and acks[i] else b"") + encode_frame(p)
        for i, p in enumerate(payloads)
    )
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    events: list[FrameEvent] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        events += decoder.feed(stream[start:end])

    assert apdus(events) == payloads
    assert sum(isinstance(e, AckReceived) for e in events) == sum(acks[: len(payloads)])
    assert not [e for e in events if isinstance(e, BadFrame | Garbage)]


@settings(max_examples=200, deadline=None)
@given(payload=_apdu_bytes)
def test_stuffing_round_trip_one_byte_at_a_time(payload: bytes) -> None:
    decoder = FrameDecoder()
    events = [e for b in encode_frame(payload) for e in decoder.feed(bytes((b,)))]

    assert events == [ApduReceived(payload)]
