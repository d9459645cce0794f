"""Invoices built from ``sale.completed`` events, as the billing pipeline bills them."""

from __future__ import annotations

from typing import Any

LINE_KEYS = ("sku", "name", "qty", "unit_minor", "amount_minor", "tax_code")
TAX_KEYS = ("code", "label", "rate_bp", "net_minor", "tax_minor", "gross_minor")
SALE_KIND = "sale.completed"


def invoice_from_sale(stall_id: str, seq: int, ts: str, data: dict[str, Any],
                      clock_offset_ms: int | None) -> dict[str, Any]:
    """Return the invoice document for one sale event."""
    taxes = [{key: tax.get(key) for key in TAX_KEYS} for tax in data["taxes"]]
    return {
        "stall_id": stall_id,
        "sale_id": data["id"],
        "seq": seq,
        "device_ts": ts,
        # The device clock may be off (no RTC on a Pi); the offset is the one
        # measured when the batch carrying this sale arrived.
        "device_clock_offset_ms": clock_offset_ms,
        "currency": data["currency"],
        "lines": [{key: line.get(key) for key in LINE_KEYS} for line in data["lines"]],
        "taxes": taxes,
        "net_minor": sum(t["net_minor"] or 0 for t in taxes),
        "tax_minor": sum(t["tax_minor"] or 0 for t in taxes),
        "fees": data.get("fees", []),
        "carbon": data.get("carbon"),
        "total_minor": data["total_minor"],
        "payments": [{"method": p["method"], "amount_minor": p["amount_minor"]}
                     for p in data["payments"]],
        "change_minor": data["change_minor"],
    }
