"""What every format parser is told about the stall and the caller's wishes."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.money import Currency


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Stall currency and whether drafts, archived and hidden items come along."""

    currency: Currency
    include_inactive: bool = False
