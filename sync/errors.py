"""Exceptions of the sync client and receiver, grouped by what the caller does next."""

from __future__ import annotations

from daemon.errors import StallboxError


class SyncError(StallboxError):
    """Base of every error the sync package raises on purpose."""


class BatchRejected(SyncError):
    """Raised when a batch is refused for good; a person must fix the cause."""

    def __init__(self, status: int, title: str, detail: str, *,
                 field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field


class GapError(SyncError):
    """Raised when a batch starts after the receiver's next expected sequence."""

    def __init__(self, expected_seq: int) -> None:
        super().__init__(f"receiver expects seq {expected_seq} next")
        self.expected_seq = expected_seq


class JournalBroken(SyncError):
    """Raised when the local journal's chain is broken; nothing is sent."""


class JournalTruncated(SyncError):
    """Raised when a stall reports a chain head behind what it reported or sent."""

    def __init__(self, reported_seq: int, held_seq: int) -> None:
        super().__init__(f"the stall's journal ends at seq {reported_seq}, but it "
                         f"already reached seq {held_seq}: its last "
                         f"{held_seq - reported_seq} events were removed")
        self.reported_seq = reported_seq
        self.held_seq = held_seq
