"""What the receiver trusts about a stall's journal: seals, epoch keys, its head.

Runs inside the storage transaction, after ``plan_ingest`` picked the events
the stall does not hold yet. The new events and the seals among them go
through the journal's own verifier (``daemon.journal.verify.verify_batch``):
every seal must be signed by the epoch key live at its seq, every epoch key
must be certified by the previous one (the first, or a recovery, by the
enrolled device key), and the batch must end on a seal. The chain head the
stall reports may never go back: a head behind what it reported or sent
before means its journal lost its tail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.journal.verify import verify_batch
from daemon.keys.epoch import CERT_KIND, unb64
from sync.errors import BatchRejected, JournalTruncated
from sync.protocol import Head
from sync.receiver.model import IncomingEvent, StallRecord, VerifiedBatch

TRUST_TYPE = "urn:stallbox:problem:journal-signature"


@dataclass(frozen=True, slots=True)
class EpochRow:
    """One certified epoch key as the receiver stores it."""

    epoch: int
    public_key: bytes
    seq: int
    cert: dict[str, Any]


def check_head(stall: StallRecord, head: Head,
               stored_hash: Callable[[int], bytes | None]) -> None:
    """Raise when the reported head is behind what the stall reached before."""
    reached = max(stall.last_seq, stall.head_seq)
    if head.seq < reached:
        raise JournalTruncated(head.seq, reached)
    if 0 < head.seq <= stall.last_seq:
        held = stall.last_hash if head.seq == stall.last_seq else stored_hash(head.seq)
        if held != head.hash:
            raise BatchRejected(409, "Conflicting history", f"the stall's head at seq "
                                f"{head.seq} differs from the event held there; its "
                                "journal was replaced", field="head")


def check_batch(stall: StallRecord, batch: VerifiedBatch,
                new: Sequence[IncomingEvent],
                keys: Mapping[int, bytes]) -> tuple[str, list[EpochRow]]:
    """Verify seals and certificates of the new events; return the stall's journal
    id and the epochs they certify."""
    _check_carried(batch.certs, keys)
    if not new:
        return stall.journal_id, []
    journal_id = stall.journal_id or _first_cert_stall(new)
    offset = new[0].seq - batch.first_seq
    prev = batch.events[offset - 1].hash if offset else batch.prev_hash
    rows = []
    for event in new:
        rows.append((event.seq, event.ts, event.kind, event.body, prev, event.hash))
        prev = event.hash
    seals = [seal for seal in batch.seals if seal[0] >= new[0].seq]
    result = verify_batch(rows, seals, prev_hash=rows[0][4], epoch_keys=dict(keys),
                          stall_id=journal_id, device_public=stall.public_key)
    if not result.ok:
        raise BatchRejected(422, "Journal signature check failed",
                            f"seq {result.bad_seq}: {result.reason}; nothing stored",
                            field="header.seals")
    return journal_id, _epochs(new)


def _check_carried(certs: Sequence[Mapping[str, Any]],
                   keys: Mapping[int, bytes]) -> None:
    """A carried certificate must name a key the receiver already follows."""
    for index, cert in enumerate(certs):
        try:
            epoch, public = int(cert["epoch"]), unb64(str(cert["public_key"]))
        except (KeyError, TypeError, ValueError) as err:
            raise BatchRejected(422, "Invalid batch", f"header.certs[{index}] is "
                                "malformed", field=f"header.certs[{index}]") from err
        if keys.get(epoch) != public:
            raise BatchRejected(422, "Journal signature check failed", f"epoch "
                                f"{epoch}'s certificate differs from the one this "
                                "stall's journal holds, or was never received",
                                field=f"header.certs[{index}]")


def _first_cert_stall(new: Sequence[IncomingEvent]) -> str:
    for event in new:
        if event.kind == CERT_KIND:
            return str(event.data.get("stall_id", ""))
    return ""


def _epochs(new: Sequence[IncomingEvent]) -> list[EpochRow]:
    return [EpochRow(int(e.data["epoch"]), unb64(str(e.data["public_key"])), e.seq,
                     e.data) for e in new if e.kind == CERT_KIND]
