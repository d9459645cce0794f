"""The receiver's one narrow storage interface; SQLite now, PostgreSQL can follow.

A backend must make ``ingest`` atomic per stall: read the stall's tail, call
``trust.check_head``, ``verify.plan_ingest`` and ``trust.check_batch``, and
store the new events, seals, epoch keys, invoices, the billing index
(``billing.index_events``) and the new tail in one
transaction, durable before it returns (the client is about to move its
cursor on the answer).
"""

from __future__ import annotations

from typing import Any, Protocol

from daemon.trust.excerpt import ExcerptCheck
from sync.protocol import Head
from sync.receiver.model import IngestResult, StallRecord, VerifiedBatch


class Storage(Protocol):
    """What the receiver app needs from a database."""

    async def get_stall(self, stall_id: str) -> StallRecord | None:
        """Return the stall, or None if it was never enrolled."""
        ...

    async def enroll(self, stall_id: str, public_key: bytes) -> None:
        """Register (or re-key) a stall's device public key."""
        ...

    async def revoke(self, stall_id: str) -> None:
        """Refuse the stall's batches from now on."""
        ...

    async def create_enrolment_token(self, stall_id: str, ttl_s: int) -> str:
        """Return a one-time token a stall can enrol itself with."""
        ...

    async def redeem_enrolment_token(self, token: str, stall_id: str,
                                     public_key: bytes) -> bool:
        """Enrol the stall if the token is valid, unused and for this stall."""
        ...

    async def ingest(self, batch: VerifiedBatch, received_at: str,
                     clock_offset_ms: int | None) -> IngestResult:
        """Store the batch's new events atomically; raise GapError or BatchRejected."""
        ...

    async def push_head(self, stall_id: str, head: Head, clock: dict[str, Any],
                        received_at: str) -> IngestResult:
        """Check and record a reported chain head; raise JournalTruncated."""
        ...

    async def receipt_check(self, text: str) -> ExcerptCheck:
        """Check a receipt excerpt against the stored journals."""
        ...

    async def invoices(self, stall_id: str, after_seq: int,
                       limit: int) -> list[dict[str, Any]]:
        """Return the stall's invoices in sequence order after after_seq."""
        ...

    async def invoice(self, stall_id: str, sale_id: str) -> dict[str, Any] | None:
        """Return one invoice, or None."""
        ...

    async def stream_revenue(self, stall_id: str, after_seq: int,
                             upto_seq: int) -> list[dict[str, Any]]:
        """Return revenue per live stream from sales in (after_seq, upto_seq]."""
        ...

    async def display_totals(self, stall_id: str, after_seq: int,
                             upto_seq: int) -> dict[str, list[dict[str, Any]]]:
        """Return display counts per slot and hour, and per sponsor."""
        ...

    async def verify_chain(self, stall_id: str) -> tuple[int, str]:
        """Walk the stall's stored events; return (events checked, first fault)."""
        ...

    async def close(self) -> None:
        """Close the database."""
        ...
