"""What the display selects from: creatives, pins, the catalog, cohorts, slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BUCKET_S = 15  # a slot shows for one bucket; a display without JS refreshes so
SIZES = ("s", "m", "l")  # screen size classes: phone, tablet, large screen
LANGS = ("de", "en", "fr", "it", "nl")
KINDS = ("house", "sponsor", "product")


@dataclass(frozen=True, slots=True)
class Cohort:
    """Who a display faces, coarsely: screen size class, language, stall zone."""

    size: str = "m"
    lang: str = "de"
    zone: str = ""

    def key(self) -> str:
        """Return the cohort as one stable string (cache keys, statistics)."""
        return f"{self.size}|{self.lang}|{self.zone}"


@dataclass(frozen=True, slots=True)
class Creative:
    """One ad or promo as a manager saved it."""

    id: str
    kind: str  # "house", "sponsor" or "product"
    title: str
    text: str = ""
    image: str = ""  # file name under <state>/creatives/, "" for none
    sku: str = ""  # product creatives: the product shown with its price
    url: str = ""  # shown as a QR code when set
    sponsor: str = ""
    share_bp: int = 0  # sponsors: share of voice in basis points of the day
    start_s: int = 0  # flight start (unix s), 0 for open
    end_s: int = 0  # flight end (unix s, exclusive), 0 for open
    hours: tuple[int, int] = (0, 24)  # day-part [from, to) in local hours
    cap_per_hour: int = 0  # impressions per hour over all displays, 0 for none
    sizes: tuple[str, ...] = ()  # targeting; empty means every cohort
    langs: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the creative as journaled."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Creative:
        """Rebuild a creative from its journaled form."""
        values = {k: data[k] for k in cls.__slots__ if k in data}
        for key in ("hours", "sizes", "langs", "zones"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Pin:
    """A product pinned live: shown with its live price while it is valid."""

    sku: str
    price_minor: int | None
    until_s: float
    kind: str = "pin"


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything slot selection reads, frozen at one version."""

    version: int
    creatives: tuple[Creative, ...] = ()
    pins: tuple[Pin, ...] = ()
    catalog: dict[str, tuple[str, int]] = field(default_factory=dict)
    capped: frozenset[str] = frozenset()  # creatives over their hourly cap
    valid_until_s: float = float("inf")  # first pin expiry or hour change


@dataclass(frozen=True, slots=True)
class Slot:
    """The chosen content of one slot; id names it in caches and statistics."""

    id: str
    kind: str  # "sponsor", "house", "product", "pin" or "welcome"
    creative: Creative | None = None
    pin: Pin | None = None

    @property
    def sku(self) -> str:
        """Return the promoted product's sku ("" when none)."""
        if self.pin is not None:
            return self.pin.sku
        return self.creative.sku if self.creative is not None else ""
