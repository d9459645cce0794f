"""The product record every catalog importer produces."""

from __future__ import annotations

from dataclasses import dataclass, field

# Tax classes a product can carry; rates per class come from the stall config.
TAX_CLASSES = ("standard", "reduced", "zero", "exempt")


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """One sellable item (a variant is its own record with its own SKU)."""

    sku: str
    name: str
    price_minor: int
    tax_class: str = "standard"
    category: str = ""
    variant: str = ""
    parent_sku: str = ""
    weight_g: int | None = None
    gift_card: bool = False
    active: bool = True
    barcode: str = ""
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # True when the SKU came from derive_sku, not from the shop's export.
    sku_derived: bool = False
    packaging: str = ""  # a configured packaging type, "" for none
    carbon_factor: str = ""  # an emission factor id or category key, "" to map

    def display_name(self) -> str:
        """Return the name with its variant, as a till and receipt show it."""
        return f"{self.name} ({self.variant})" if self.variant else self.name


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row the importer refused, with its 1-based row number in the file."""

    row: int
    reason: str


@dataclass(slots=True)
class ParseResult:
    """What an importer recovered from one file."""

    format: str
    products: list[ProductRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    skipped: int = 0
    # Things the owner should know that refused no row (ignored columns...).
    warnings: list[str] = field(default_factory=list)
