"""Check a batch on its own (signature, shape, chain) and against what is stored.

The pure half (``verify_batch``) runs before any storage is touched; the other
half (``plan_ingest``) runs inside the storage transaction so two batches of
one stall can never both extend the same tail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from daemon.journal.canonical import chain_hash, parse_canonical
from daemon.keys.device import verify_signature
from sync import protocol
from sync.errors import BatchRejected, GapError
from sync.receiver import schema
from sync.receiver.model import IncomingEvent, StallRecord, VerifiedBatch

CHAIN_TYPE = "urn:stallbox:problem:chain-broken"
# Checks a later journal format adds (e.g. epoch-key signatures, #6) plug in
# here: each gets the stall and the verified batch and raises BatchRejected.
EventVerifier = Callable[[StallRecord, VerifiedBatch], None]


def check_signature(stall: StallRecord, signature_header: str, raw: bytes) -> None:
    """Raise BatchRejected (401) unless the stall's device key signed raw."""
    signature = protocol.parse_signature(signature_header)
    if not verify_signature(stall.public_key, signature,
                            protocol.signing_message(raw)):
        raise BatchRejected(401, "Bad signature",
                            "the batch signature does not verify with the key "
                            "enrolled for this stall", field=protocol.SIGNATURE_HEADER)


def verify_batch(stall_id: str, raw: bytes, key: str) -> VerifiedBatch:
    """Parse a signed batch body and check its header, events and inner chain."""
    header, lines = protocol.split_batch(raw)
    schema.check_header(header)
    if header["stall_id"] != stall_id:
        raise schema.Invalid("header.stall_id", "differs from the stall in the URL")
    first, last = header["first_seq"], header["last_seq"]
    wanted = protocol.idempotency_key(stall_id, first, last)
    if key != wanted:
        raise schema.Invalid(protocol.IDEMPOTENCY_HEADER, f"must be {wanted}")
    if len(lines) != header["count"]:
        raise schema.Invalid("header.count", f"says {header['count']} events, the "
                             f"batch holds {len(lines)}")
    prev_hash = bytes.fromhex(header["prev_hash"])
    events = _chain(first, prev_hash, lines)
    if events[-1].hash != bytes.fromhex(header["last_hash"]):
        raise _broken(last, "the events do not hash to header.last_hash")
    head = _head(header["head"], "header.head")
    if head.seq < last:
        raise schema.Invalid("header.head.seq", f"is {head.seq}, before the batch's "
                             f"last seq {last}")
    return VerifiedBatch(stall_id, first, last, prev_hash, events[-1].hash,
                         header["clock"], tuple(events), head,
                         _seals(header["seals"], first, last),
                         tuple(header["certs"]))


def _head(doc: dict[str, Any], path: str) -> protocol.Head:
    schema.check_head(doc, path)
    return protocol.Head(doc["seq"], bytes.fromhex(doc["hash"]))


def verify_head(stall_id: str, raw: bytes) -> tuple[protocol.Head, dict[str, Any]]:
    """Parse a signed head push; return the head and the device's clock report."""
    try:
        body = parse_canonical(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise schema.Invalid("body", f"is not JSON without floats: {err}") from err
    except RecursionError as err:  # [[[[... past the interpreter's stack
        raise schema.Invalid("body", "nested too deeply") from err
    schema.check_head_push(body)
    if body["stall_id"] != stall_id:
        raise schema.Invalid("stall_id", "differs from the stall in the URL")
    return _head(body["head"], "head"), body["clock"]


def check_head_signature(stall: StallRecord, signature_header: str,
                         raw: bytes) -> None:
    """Raise BatchRejected (401) unless the stall's device key signed the head."""
    signature = protocol.parse_signature(signature_header)
    if not verify_signature(stall.public_key, signature,
                            protocol.head_signing_message(raw)):
        raise BatchRejected(401, "Bad signature", "the head signature does not "
                            "verify with the key enrolled for this stall",
                            field=protocol.SIGNATURE_HEADER)


def _seals(items: list[Any], first: int, last: int) -> tuple[protocol.SealRow, ...]:
    """Decode the header's seal rows; they must lie in the batch, in order."""
    seals: list[protocol.SealRow] = []
    for index, item in enumerate(items):
        path = f"header.seals[{index}]"
        try:
            seq, epoch, digest, signature = item
            row = (int(seq), int(epoch), bytes.fromhex(digest),
                   protocol.b64decode(signature))
        except (TypeError, ValueError) as err:
            raise schema.Invalid(path, "must be [seq, epoch, hash hex, signature "
                                 "base64]") from err
        if not first <= row[0] <= last or (seals and row[0] <= seals[-1][0]):
            raise schema.Invalid(path, f"seal of seq {row[0]} is outside the batch "
                                 "or out of order")
        seals.append(row)
    if not seals or seals[-1][0] != last:
        raise BatchRejected(422, "Unsealed batch", f"the batch must end on a seal of "
                            f"its last seq {last} (batch format v2)",
                            field="header.seals")
    return tuple(seals)


def _chain(first: int, prev: bytes, lines: Sequence[bytes]) -> list[IncomingEvent]:
    events = []
    check = schema.check_event
    for index, body in enumerate(lines):
        try:
            record = parse_canonical(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise schema.Invalid(f"events[{index}]",
                                 f"is not JSON without floats: {err}") from err
        except RecursionError as err:
            raise schema.Invalid(f"events[{index}]", "nested too deeply") from err
        check(record, f"events[{index}]")
        if record["seq"] != first + index:
            raise schema.Invalid(f"events[{index}].seq", f"must be {first + index} "
                                 "(batches hold contiguous sequences)")
        prev = chain_hash(prev, body)
        events.append(IncomingEvent(record["seq"], record["ts"], record["kind"],
                                    record["data"], body, prev))
    return events


def _broken(seq: int, why: str) -> BatchRejected:
    return BatchRejected(422, "Hash chain broken", f"seq {seq}: {why}; nothing "
                         "stored", field="events")


def plan_ingest(stall: StallRecord, batch: VerifiedBatch,
                stored_hash: Callable[[int], bytes | None]) -> Sequence[IncomingEvent]:
    """Return the batch's events this stall does not hold yet, or raise."""
    expected = stall.last_seq + 1
    if batch.first_seq > expected:
        raise GapError(expected)
    if batch.first_seq == expected:
        if batch.prev_hash != stall.last_hash:
            raise _broken(batch.first_seq, "prev_hash is not the hash of the last "
                          f"event held (seq {stall.last_seq})")
        return batch.events
    overlap_end = min(batch.last_seq, stall.last_seq)
    held = stall.last_hash if overlap_end == stall.last_seq \
        else stored_hash(overlap_end)
    if batch.events[overlap_end - batch.first_seq].hash != held:
        raise BatchRejected(409, "Conflicting history", f"seq {overlap_end} differs "
                            "from the event already held; the stall's journal was "
                            "replaced or the stall id is shared", field="events")
    return batch.events[overlap_end - batch.first_seq + 1:]
