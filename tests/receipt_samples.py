"""Receipts the printer tests share: accents, euro sign, two tax rates."""

from __future__ import annotations

from daemon.sales.receipt import PaymentRow, Receipt, ReceiptLine, TaxRow


def market_receipt(*, reprint: bool = False, sale_id: str = "S-0001") -> Receipt:
    """Return a two-rate cash receipt with é, ä, ß and € in it."""
    return Receipt(
        header=("Hofladen Élise", "Marktplatz 3, 79098 Freiburg", "USt-IdNr. DE1234"),
        sale_id=sale_id,
        seq=17,
        time_local="2024-05-04 10:15",
        currency="EUR",
        lines=(
            ReceiptLine(1, "Crème brûlée", 450, 450, "B"),
            ReceiptLine(3, "Bärlauch-Pesto", 690, 2070, "B"),
            ReceiptLine(1, "Keramikbecher groß", 1800, 1800, "A"),
        ),
        taxes=(
            TaxRow("A", "19%", 1513, 287, 1800),
            TaxRow("B", "7%", 2355, 165, 2520),
        ),
        total_minor=4320,
        payments=(PaymentRow("Cash", 5000),),
        change_minor=680,
        footer=("Alle Preise in € inkl. MwSt.", "Merci et à bientôt!"),
        reprint=reprint,
    )
