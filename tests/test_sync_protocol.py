"""The pure parts of sync: batch bytes, signatures, answers, backoff, Retry-After."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.keys.device import DeviceIdentity, verify_signature
from sync import protocol
from sync.backoff import Backoff, parse_retry_after
from sync.errors import BatchRejected


def header() -> protocol.BatchHeader:
    return protocol.BatchHeader("stall-1", 7, 8, bytes(32), b"\x01" * 32,
                                {"sent_at": "2025-06-01T10:00:00.000000Z"},
                                head=protocol.Head(9, b"\x01" * 32),
                                seals=[(8, 3, b"\x01" * 32, bytes(64))])


def test_batch_body_is_header_line_then_stored_bodies() -> None:
    raw = protocol.encode_batch(header(), [b'{"seq":7}', b'{"seq":8}'])
    assert raw == (
        b'{"certs":[],"clock":{"sent_at":"2025-06-01T10:00:00.000000Z"},"count":2,'
        b'"first_seq":7,"head":{"hash":"' + b"01" * 32 + b'","seq":9},'
        b'"last_hash":"' + b"01" * 32 + b'","last_seq":8,'
        b'"prev_hash":"' + b"00" * 32 + b'","seals":[[8,3,"' + b"01" * 32 + b'",'
        b'"' + b"A" * 86 + b'"]],"stall_id":"stall-1","v":2}\n'
        b'{"seq":7}\n{"seq":8}')
    parsed, lines = protocol.split_batch(raw)
    assert parsed["count"] == 2 and lines == [b'{"seq":7}', b'{"seq":8}']
    assert zlib.decompress(protocol.compress(raw)) == raw


def test_idempotency_key_is_stall_and_range() -> None:
    assert protocol.idempotency_key("stall-1", 7, 8) == "stall-1:7-8"
    assert protocol.batch_path("stall-1") == "/v1/stalls/stall-1/batches"


def test_signature_covers_the_body_digest(tmp_path: Path) -> None:
    key = DeviceIdentity.load_or_create(tmp_path)
    raw = protocol.encode_batch(header(), [b"{}"])
    value = protocol.sign_batch(key.sign, raw)
    assert value.startswith("ed25519=")
    signature = protocol.parse_signature(value)
    assert verify_signature(key.public_bytes, signature, protocol.signing_message(raw))
    assert not verify_signature(key.public_bytes, signature,
                                protocol.signing_message(raw + b" "))


@pytest.mark.parametrize("value", ["", "ed25519=", "rsa=AAAA", "ed25519=!!!",
                                   "ed25519=" + "A" * 10])
def test_malformed_signatures_are_401(value: str) -> None:
    with pytest.raises(BatchRejected) as caught:
        protocol.parse_signature(value)
    assert caught.value.status == 401


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, b'{"acked_seq": 9}', protocol.Acked(9)),
    (200, b'{"acked_se', protocol.Retry("acknowledgement unreadable (truncated?)")),
    (200, b'{"acked_seq": true}',
     protocol.Retry("acknowledgement unreadable (truncated?)")),
    (500, b"", protocol.Retry("receiver answered 500")),
    (502, b"<html>", protocol.Retry("receiver answered 502")),
    (503, b"", protocol.Retry("receiver answered 503", 7.0)),
    (408, b"", protocol.Retry("receiver answered 408", 7.0)),
    (429, b"", protocol.Retry("receiver answered 429", 7.0)),
    (409, b'{"type": "urn:stallbox:problem:sync-gap", "expected_seq": 4}',
     protocol.Rewind(4)),
    (409, b'{"title": "Conflicting history", "detail": "seq 3 differs"}',
     protocol.Park(409, "seq 3 differs")),
    (422, b'{"detail": "events[0].data.qty must be an integer"}',
     protocol.Park(422, "events[0].data.qty must be an integer")),
    (401, b"", protocol.Park(401, "receiver refused the batch (401)")),
    (413, b"not json", protocol.Park(413, "receiver refused the batch (413)")),
])
def test_answers_are_classified(status: int, body: bytes,
                                expected: protocol.Outcome) -> None:
    retry_after = 7.0 if status in (503, 408, 429) else None
    assert protocol.classify(status, body, retry_after) == expected


def test_backoff_is_full_jitter_capped_and_honours_retry_after() -> None:
    backoff = Backoff(base_s=1.0, cap_s=300.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(40)]
    assert all(0 <= d <= min(300.0, 2.0 ** n) for n, d in enumerate(delays))
    assert max(delays[20:]) > 100  # reaches towards the cap, jittered
    assert backoff.next_delay(retry_after_s=999) >= 999
    assert backoff.next_delay(retry_after_s=10**9) == 3600
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 6, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sun, 01 Jun 2025 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 01 Jun 2025 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
