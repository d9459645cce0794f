"""What every format parser is told about the stall and the caller's wishes."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.money import Currency


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Stall currency and whether drafts, archived and hidden items come along.

    ``packaging_types`` and ``factor_refs`` are what the stall's config knows;
    None means a value is taken unchecked (the pure parser tests).
    """

    currency: Currency
    include_inactive: bool = False
    packaging_types: frozenset[str] | None = None
    factor_refs: frozenset[str] | None = None
