"""What the receiver knows about stalls and batches, independent of storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.journal.canonical import GENESIS_HASH
from sync.protocol import Head, SealRow


@dataclass(frozen=True, slots=True)
class StallRecord:
    """One enrolled stall: its device key and how far its journal has arrived."""

    stall_id: str
    public_key: bytes
    revoked: bool = False
    enrolled_at: str = ""
    last_seq: int = 0
    last_hash: bytes = GENESIS_HASH
    events_stored: int = 0
    last_batch_at: str = ""
    clock_offset_ms: int | None = None
    clock_state: dict[str, Any] = field(default_factory=dict)
    head_seq: int = 0  # the highest chain head the stall ever reported
    journal_id: str = ""  # the stall id its epoch certificates name
    alarm: str = ""  # why the last head or batch looked like a truncated journal

    def status(self) -> dict[str, Any]:
        """Return the public status document of GET /v1/stalls/{stall_id}."""
        return {"stall_id": self.stall_id, "last_seq": self.last_seq,
                "events_stored": self.events_stored, "head_seq": self.head_seq,
                "last_batch_at": self.last_batch_at or None,
                "clock_offset_ms": self.clock_offset_ms,
                "clock": self.clock_state or None, "revoked": self.revoked,
                "enrolled_at": self.enrolled_at, "alarm": self.alarm or None}


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One event of a batch, parsed and with the hash the receiver derived."""

    seq: int
    ts: str
    kind: str
    data: dict[str, Any]
    body: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """A batch whose signature, schema and internal chain have been checked."""

    stall_id: str
    first_seq: int
    last_seq: int
    prev_hash: bytes
    last_hash: bytes
    clock: dict[str, Any]
    events: tuple[IncomingEvent, ...]
    head: Head = Head(0, GENESIS_HASH)
    seals: tuple[SealRow, ...] = ()
    certs: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What storing a batch did: the highest contiguous seq held and how many new."""

    acked_seq: int
    stored: int
