"""Invoices built from ``sale.completed`` events, as the billing pipeline bills them.

The body is the daemon's (``daemon.sales.service.event_body``): lines with
their kind (goods, fee, deposit, credit, deposit-return), tax per rate, the
tenders, cash rounding, and carbon when the stall estimates it. A negative
total is a cash payout. Refunds (``sale.refunded``) become credit notes on the
invoice of the sale they pay back; card payment events are listed with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sync.receiver.model import IncomingEvent

LINE_KEYS = ("sku", "name", "qty", "unit_minor", "amount_minor", "tax_code", "kind",
             "line_discount_minor", "sale_discount_minor")
TAX_KEYS = ("code", "label", "rate_bp", "net_minor", "tax_minor", "gross_minor")
PAYMENT_KEYS = ("method", "amount_minor", "tendered_minor", "ref", "status")
SALE_KIND = "sale.completed"
PENDING_KIND = "sale.pending"
REFUND_KIND = "sale.refunded"


def sale_ref(event: IncomingEvent) -> str:
    """Return the sale an event is about ('' for events about no sale)."""
    if event.kind == PENDING_KIND:
        return str(event.data.get("id", ""))
    ref = event.data.get("sale_id")
    return ref if isinstance(ref, str) else ""


def invoice_from_sale(stall_id: str, seq: int, ts: str, data: dict[str, Any],
                      clock_offset_ms: int | None) -> dict[str, Any]:
    """Return the invoice document for one sale event."""
    taxes = [_pick(tax, TAX_KEYS) for tax in data["taxes"]]
    return {
        "stall_id": stall_id,
        "sale_id": data["id"],
        "seq": seq,
        "device_ts": ts,
        # The device clock may be off (no RTC on a Pi); the offset is the one
        # measured when the batch carrying this sale arrived.
        "device_clock_offset_ms": clock_offset_ms,
        "currency": data["currency"],
        "payout": data["total_minor"] < 0,
        "lines": [_pick(line, LINE_KEYS) for line in data["lines"]],
        "taxes": taxes,
        "net_minor": sum(t["net_minor"] or 0 for t in taxes),
        "tax_minor": sum(t["tax_minor"] or 0 for t in taxes),
        "fees": data.get("fees", []),
        "fees_minor": sum(fee.get("amount_minor", 0) for fee in data.get("fees", [])),
        "rounding_minor": data.get("rounding_minor", 0),
        "sale_discount": data.get("sale_discount"),
        "carbon": _carbon(data.get("carbon")),
        "contribution": data.get("contribution"),
        # Sold during a live stream: the stream and each pinned offer (#8).
        "live": data.get("live"),
        "total_minor": data["total_minor"],
        "payments": [_pick(p, PAYMENT_KEYS) for p in data["payments"]],
        "change_minor": data["change_minor"],
        "credit_notes": [],
        "refunded_minor": 0,
        "payment_events": [],
    }


def attach_related(invoice: dict[str, Any],
                   related: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
    """Add the sale's refunds as credit notes and its card payment events."""
    for seq, kind, data in related:
        if kind == REFUND_KIND:
            invoice["credit_notes"].append(credit_note(seq, data))
            invoice["refunded_minor"] += data["total_minor"]
        elif kind.startswith(("payment.", "refund.")):
            invoice["payment_events"].append(
                {"seq": seq, "kind": kind, "intent_id": data.get("intent_id"),
                 "amount_minor": data.get("amount_minor")})
    invoice["balance_minor"] = invoice["total_minor"] - invoice["refunded_minor"]


def credit_note(seq: int, data: dict[str, Any]) -> dict[str, Any]:
    """Return the credit note of one sale.refunded event."""
    return {"refund_id": data["id"], "seq": seq, "reason": data.get("reason", ""),
            "lines": [_pick(line, ("line", "sku", "name", "qty", "amount_minor",
                                   "kind", "tax_code")) for line in data["lines"]],
            "taxes": [_pick(tax, TAX_KEYS) for tax in data["taxes"]],
            "tenders": [_pick(t, ("method", "amount_minor", "ref"))
                        for t in data["tenders"]],
            "rounding_minor": data.get("rounding_minor", 0),
            "total_minor": data["total_minor"]}


def _carbon(part: Any) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        return None
    return {"estimate": part.get("estimate"), "flags": part.get("flags", []),
            "methodology_url": part.get("methodology_url", "")}


def _pick(item: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: item[key] for key in keys if key in item}
