"""The sync wire format (batch v2), as pure functions over bytes.

A batch is one HTTP POST to ``{url}/v1/stalls/{stall_id}/batches``. Its body,
before compression, is newline-separated canonical JSON: the first line is the
batch header, then each event's body exactly as the journal stored it (the
bytes its hash was taken over; canonical JSON never holds a raw newline). The
receiver re-derives every hash from ``prev_hash``, so no per-event hash travels.

v2 batches end on a journal seal: the header carries the seal rows inside the
range (the last one signs ``last_hash``), the epoch certificates those seals
need that are not events of the batch, and the journal's chain head when the
batch was read, so the receiver can tell a journal that lost its tail.

The body is sent ``Content-Encoding: deflate`` (zlib, RFC 9110 §8.4.1.2). The
device signs ``SIGN_CONTEXT ‖ SHA-256(uncompressed body)`` with Ed25519; the
signature travels in ``Stallbox-Signature``. ``Idempotency-Key`` is
``{stall_id}:{first_seq}-{last_seq}``, which the header line repeats under the
signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.journal.canonical import canonical_bytes, parse_canonical
from sync.errors import BatchRejected

BATCH_VERSION = 2
CONTENT_TYPE = "application/vnd.stallbox.batch+ndjson"
CONTENT_ENCODING = "deflate"
SIGNATURE_HEADER = "Stallbox-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGN_CONTEXT = b"stallbox-sync-batch-v1\n"
HEAD_SIGN_CONTEXT = b"stallbox-sync-head-v2\n"
HEAD_CONTENT_TYPE = "application/vnd.stallbox.head+json"
COMPRESS_LEVEL = 1  # level 6 buys ~10 % size for 3x the CPU on a Pi
GAP_TYPE = "urn:stallbox:problem:sync-gap"
TRUNCATED_TYPE = "urn:stallbox:problem:journal-truncated"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The signed first line of a batch: who sent which range, and its clock."""

    stall_id: str
    first_seq: int
    last_seq: int
    prev_hash: bytes
    last_hash: bytes
    clock: Mapping[str, Any]
    head: Head = field(default_factory=lambda: Head(0, bytes(32)))
    seals: Sequence[SealRow] = ()
    certs: Sequence[Mapping[str, Any]] = ()

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_dict(self) -> dict[str, Any]:
        return {"v": BATCH_VERSION, "stall_id": self.stall_id,
                "first_seq": self.first_seq, "last_seq": self.last_seq,
                "count": self.count, "prev_hash": self.prev_hash.hex(),
                "last_hash": self.last_hash.hex(), "clock": dict(self.clock),
                "head": self.head.to_dict(),
                "seals": [seal_to_wire(seal) for seal in self.seals],
                "certs": [dict(cert) for cert in self.certs]}


@dataclass(frozen=True, slots=True)
class Head:
    """The journal's chain head (seq and hash of its last event) at reading time."""

    seq: int
    hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash.hex()}


SealRow = tuple[int, int, bytes, bytes]  # seq, epoch, hash, signature


def seal_to_wire(seal: SealRow) -> list[Any]:
    """Return a seal row as the header carries it: [seq, epoch, hash hex, sig b64]."""
    seq, epoch, digest, signature = seal
    return [seq, epoch, bytes(digest).hex(),
            base64.urlsafe_b64encode(bytes(signature)).decode().rstrip("=")]


def encode_head(stall_id: str, head: Head, clock: Mapping[str, Any]) -> bytes:
    """Return the body of a head push: the chain head the journal ends at now."""
    return canonical_bytes({"v": BATCH_VERSION, "stall_id": stall_id,
                            "head": head.to_dict(), "clock": dict(clock)})


def head_path(stall_id: str) -> str:
    """Return the receiver path the chain head is pushed to."""
    return f"/v1/stalls/{stall_id}/head"


def batch_path(stall_id: str) -> str:
    """Return the receiver path batches for this stall are posted to."""
    return f"/v1/stalls/{stall_id}/batches"


def idempotency_key(stall_id: str, first_seq: int, last_seq: int) -> str:
    """Return the batch's idempotency key: stall id and sequence range."""
    return f"{stall_id}:{first_seq}-{last_seq}"


def encode_batch(header: BatchHeader, bodies: Sequence[bytes]) -> bytes:
    """Join the header line and the stored event bodies into one batch body."""
    return b"\n".join([canonical_bytes(header.to_dict()), *bodies])


def compress(raw: bytes) -> bytes:
    """Deflate (zlib format) a batch body for Content-Encoding: deflate."""
    return zlib.compress(raw, COMPRESS_LEVEL)


def signing_message(raw: bytes) -> bytes:
    """Return what the device signs: a context label and the body's digest."""
    return SIGN_CONTEXT + hashlib.sha256(raw).digest()


def head_signing_message(raw: bytes) -> bytes:
    """Return what the device signs for a head push (a context of its own)."""
    return HEAD_SIGN_CONTEXT + hashlib.sha256(raw).digest()


def sign_batch(sign: Callable[[bytes], bytes], raw: bytes, *,
               head: bool = False) -> str:
    """Return the Stallbox-Signature header value for a batch or head body."""
    signature = sign(head_signing_message(raw) if head else signing_message(raw))
    return "ed25519=" + base64.urlsafe_b64encode(signature).decode().rstrip("=")


def parse_signature(value: str) -> bytes:
    """Decode a Stallbox-Signature header; raise BatchRejected (401) if malformed."""
    scheme, _, b64 = value.partition("=")
    try:
        signature = b64decode(b64)
    except ValueError as err:
        raise BatchRejected(401, "Bad signature", "signature is not base64",
                            field=SIGNATURE_HEADER) from err
    if scheme != "ed25519" or len(signature) != 64:
        raise BatchRejected(401, "Bad signature",
                            "send Stallbox-Signature: ed25519=<64 bytes, base64>",
                            field=SIGNATURE_HEADER)
    return signature


_STANDARD_TO_URLSAFE = str.maketrans("+/", "-_")


def b64decode(text: str) -> bytes:
    """Decode base64 (URL-safe or standard alphabet), padded or not; ValueError."""
    try:
        text = text.translate(_STANDARD_TO_URLSAFE)
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, UnicodeEncodeError) as err:
        raise ValueError(str(err)) from err


def split_batch(raw: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Split a batch body into its parsed header and its raw event lines."""
    lines = raw.split(b"\n")
    try:
        header = parse_canonical(lines[0])
    except (ValueError, UnicodeDecodeError) as err:
        raise BatchRejected(422, "Bad batch", f"header line is not JSON: {err}",
                            field="header") from err
    except RecursionError as err:  # [[[[... past the interpreter's stack
        raise BatchRejected(422, "Bad batch", "header line nested too deeply",
                            field="header") from err
    if not isinstance(header, dict):
        raise BatchRejected(422, "Bad batch", "header line must be a JSON object",
                            field="header")
    return header, lines[1:]


def ack_body(stall_id: str, acked_seq: int, stored: int) -> dict[str, Any]:
    """Return the receiver's acknowledgement document."""
    return {"stall_id": stall_id, "acked_seq": acked_seq, "stored": stored,
            "duplicate": stored == 0}


# -- what the client does with an answer -------------------------------------


@dataclass(frozen=True, slots=True)
class Acked:
    """The receiver holds every event up to seq; move the cursor there."""

    seq: int


@dataclass(frozen=True, slots=True)
class Rewind:
    """The receiver expects an earlier seq; resend from there."""

    expected_seq: int


@dataclass(frozen=True, slots=True)
class Retry:
    """A passing fault: try the same batch again after a backoff."""

    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Park:
    """A refusal only a person can fix; stop until they retry."""

    status: int
    message: str


Outcome = Acked | Rewind | Retry | Park


def classify(status: int, body: bytes, retry_after_s: float | None) -> Outcome:
    """Decide what a receiver answer means for the client."""
    if status in RETRY_STATUSES or status >= 500:
        return Retry(f"receiver answered {status}", retry_after_s)
    document = _json_object(body)
    if status == 200:
        acked = document.get("acked_seq") if document else None
        if isinstance(acked, int) and not isinstance(acked, bool) and acked >= 0:
            return Acked(acked)
        return Retry("acknowledgement unreadable (truncated?)", retry_after_s)
    if status == 409 and document and document.get("type") == GAP_TYPE:
        expected = document.get("expected_seq")
        if isinstance(expected, int) and expected >= 1:
            return Rewind(expected)
    detail = str(document.get("detail", "")) if document else ""
    return Park(status, (detail or f"receiver refused the batch ({status})")[:300])


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
