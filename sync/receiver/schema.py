"""Shape checks for batch headers and events; a failure names the field.

Extra fields are allowed: the daemon adds fields to its events over time
(fees, carbon) and an old receiver must not park every stall for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.errors import BatchRejected

STALL_ID_MAX = 64
_ENVELOPE = (("seq", int), ("ts", str), ("kind", str), ("data", dict))
_TYPES: dict[type, str] = {str: "a string", int: "an integer", dict: "an object",
                           list: "a list", bool: "true or false"}


class Invalid(BatchRejected):
    """Raised when a header or event field is missing or of the wrong shape."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(422, "Invalid batch", f"{field} {why}", field=field)


def need(obj: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
    """Return obj[key] if present and of kind (booleans are not integers)."""
    name = f"{path}.{key}" if path else key
    if key not in obj:
        raise Invalid(name, "is required")
    value = obj[key]
    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, kind):
        raise Invalid(name, f"must be {_TYPES.get(kind, kind.__name__)}")
    return value


def need_int(obj: Mapping[str, Any], key: str, path: str, low: int = 0) -> int:
    """Return an integer field no smaller than low."""
    value = need(obj, key, int, path)
    if value < low:
        raise Invalid(f"{path}.{key}" if path else key, f"must be at least {low}")
    return value


def check_header(header: Mapping[str, Any]) -> None:
    """Check the batch header line's fields."""
    if header.get("v") != 2:
        raise Invalid("header.v", "must be 2 (this receiver speaks batch format v2: "
                      "batches end on a seal; update the daemon)")
    stall_id = need(header, "stall_id", str, "header")
    if not 0 < len(stall_id) <= STALL_ID_MAX:
        raise Invalid("header.stall_id", f"must be 1 to {STALL_ID_MAX} characters")
    first = need_int(header, "first_seq", "header", 1)
    last = need_int(header, "last_seq", "header", first)
    if need_int(header, "count", "header", 1) != last - first + 1:
        raise Invalid("header.count", "must equal last_seq - first_seq + 1")
    for key in ("prev_hash", "last_hash"):
        need_hex(header, key, "header")
    need(header, "clock", dict, "header")
    check_head(need(header, "head", dict, "header"), "header.head")
    need(header, "seals", list, "header")
    for index, cert in enumerate(need(header, "certs", list, "header")):
        if type(cert) is not dict:
            raise Invalid(f"header.certs[{index}]", "must be an object")


def need_hex(obj: Mapping[str, Any], key: str, path: str) -> str:
    """Return a field holding a SHA-256 digest as 64 lowercase hex digits."""
    value = need(obj, key, str, path)
    if len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise Invalid(f"{path}.{key}", "must be 64 lowercase hex digits")
    return value


def check_head(head: Mapping[str, Any], path: str) -> None:
    """Check a reported chain head: {"seq": N, "hash": hex}."""
    need_int(head, "seq", path)
    need_hex(head, "hash", path)


def check_head_push(body: Any) -> None:
    """Check the body of a head push."""
    if type(body) is not dict:
        raise Invalid("body", "must be an object")
    if body.get("v") != 2:
        raise Invalid("v", "must be 2")
    need(body, "stall_id", str, "")
    need(body, "clock", dict, "")
    check_head(need(body, "head", dict, ""), "head")


def check_event(record: Any, path: str) -> None:
    """Check one event body: envelope always, data for the kinds billing reads."""
    if type(record) is not dict:
        raise Invalid(path, "must be an object")
    fields(record, _ENVELOPE, path)
    if record["seq"] < 1:
        raise Invalid(f"{path}.seq", "must be at least 1")
    data = record["data"]
    checker = _KINDS.get(record["kind"])
    if checker is not None:
        checker(data, f"{path}.data")


_LINE = (("sku", str), ("name", str), ("qty", int), ("unit_minor", int),
         ("amount_minor", int), ("tax_code", str))
_TAX = (("code", str), ("rate_bp", int), ("net_minor", int), ("tax_minor", int),
        ("gross_minor", int))
_PAYMENT = (("method", str), ("amount_minor", int))
_SALE = (("id", str), ("currency", str), ("total_minor", int),
         ("change_minor", int), ("lines", list), ("taxes", list), ("payments", list))
_REFUND = (("id", str), ("sale_id", str), ("currency", str), ("total_minor", int),
           ("lines", list), ("taxes", list), ("tenders", list))
_REFUND_LINE = (("sku", str), ("qty", int), ("amount_minor", int))
_SALE_REF = (("sale_id", str),)
_LIVE = (("stream_id", str), ("lines", list))
_LIVE_LINE = (("sku", str), ("kind", str), ("event_id", str), ("unit_minor", int),
              ("normal_minor", int))
_MEASURE_ROW = (("slot", str), ("hour", str), ("cohort", str), ("impressions", int),
                ("shown_s", int), ("conversions", int))
_CREATIVE = (("id", str), ("kind", str), ("title", str), ("sponsor", str))
# Each spec compiled to (keys, types): one pass in C checks the common case.
_COMPILED: dict[int, tuple[tuple[str, ...], tuple[type, ...]]] = {}


def _compiled(spec: tuple[tuple[str, type], ...]
              ) -> tuple[tuple[str, ...], tuple[type, ...]]:
    found = _COMPILED.get(id(spec))
    if found is None:
        found = _COMPILED[id(spec)] = (tuple(k for k, _ in spec),
                                       tuple(t for _, t in spec))
    return found


def fields(obj: Mapping[str, Any], spec: tuple[tuple[str, type], ...],
           path: str) -> None:
    """Check many fields at once; exact types, as JSON decoding produces them."""
    keys, types = _compiled(spec)
    if tuple(map(type, map(obj.get, keys))) == types:
        return
    for key, kind in spec:
        if type(obj.get(key)) is not kind:
            need(obj, key, kind, path)  # raises with the precise message


def _items(items: list[Any], spec: tuple[tuple[str, type], ...], path: str) -> None:
    for index, item in enumerate(items):
        if type(item) is not dict:
            raise Invalid(f"{path}[{index}]", "must be an object")
        fields(item, spec, f"{path}[{index}]")


def _sale(data: Mapping[str, Any], path: str) -> None:
    """Check a sale body (sale.completed and sale.pending); payouts are negative."""
    fields(data, _SALE, path)
    if len(data["currency"]) != 3:
        raise Invalid(f"{path}.currency", "must be an ISO 4217 code")
    if not data["lines"]:
        raise Invalid(f"{path}.lines", "must have at least 1 item(s)")
    _items(data["lines"], _LINE, f"{path}.lines")
    _items(data["taxes"], _TAX, f"{path}.taxes")
    _items(data["payments"], _PAYMENT, f"{path}.payments")
    if data["change_minor"] < 0:
        raise Invalid(f"{path}.change_minor", "must be at least 0")
    if not data["payments"] and data["total_minor"] > 0:
        raise Invalid(f"{path}.payments", "must have at least 1 item(s)")
    for index, line in enumerate(data["lines"]):
        if line["qty"] == 0:
            raise Invalid(f"{path}.lines[{index}].qty", "must not be 0")
    if "live" in data:
        _live(need(data, "live", dict, path), f"{path}.live")


def _refund(data: Mapping[str, Any], path: str) -> None:
    fields(data, _REFUND, path)
    _items(data["lines"], _REFUND_LINE, f"{path}.lines")
    _items(data["taxes"], _TAX, f"{path}.taxes")
    _items(data["tenders"], _PAYMENT, f"{path}.tenders")


def _live(part: Mapping[str, Any], path: str) -> None:
    """Check a sale's live-stream attribution (daemon.live.pricing), billed per
    stream and per pinned offer."""
    fields(part, _LIVE, path)
    _items(part["lines"], _LIVE_LINE, f"{path}.lines")


def _measured(data: Mapping[str, Any], path: str) -> None:
    """Check aggregated display counts (daemon.display.measure), billed to
    advertisers: counts are whole and never negative."""
    fields(data, (("rows", list),), path)
    _items(data["rows"], _MEASURE_ROW, f"{path}.rows")
    for index, row in enumerate(data["rows"]):
        for key in ("impressions", "shown_s", "conversions"):
            need_int(row, key, f"{path}.rows[{index}]")


def _creative(data: Mapping[str, Any], path: str) -> None:
    fields(data, _CREATIVE, path)


def _sale_ref(data: Mapping[str, Any], path: str) -> None:
    fields(data, _SALE_REF, path)


def _sync_acked(data: Mapping[str, Any], path: str) -> None:
    need_int(data, "acked_seq", path)


_KINDS = {"sale.completed": _sale, "sale.pending": _sale, "sale.refunded": _refund,
          "sale.cancelled": _sale_ref, "sync.acked": _sync_acked,
          "display.measured": _measured, "display.creative_saved": _creative}
_KINDS.update((f"payment.{k}", _sale_ref) for k in (
    "intent_created", "approved", "declined", "aborted", "unknown", "resolved"))
