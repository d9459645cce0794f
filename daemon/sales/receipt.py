"""The receipt as a document: one model rendered to ESC/POS and to text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One sold line: quantity, name and its gross amount in minor units."""

    qty: int
    name: str
    unit_minor: int
    amount_minor: int
    tax_code: str


@dataclass(frozen=True, slots=True)
class TaxRow:
    """Tax for one rate over the receipt's total at that rate."""

    code: str
    rate_label: str
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One tender: its label and amount, e.g. ('Cash', 2000)."""

    label: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """Everything a printed receipt shows, already computed; rendering adds nothing."""

    header: tuple[str, ...]
    sale_id: str
    seq: int
    time_local: str
    currency: str
    lines: tuple[ReceiptLine, ...]
    taxes: tuple[TaxRow, ...]
    total_minor: int
    payments: tuple[PaymentRow, ...]
    change_minor: int
    footer: tuple[str, ...] = ()
    reprint: bool = False
    notes: tuple[str, ...] = field(default=())
