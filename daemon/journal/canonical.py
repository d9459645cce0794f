"""Canonical JSON: the exact bytes an event's hash is taken over."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = bytes(32)


def _refuse_float(value: str) -> Any:
    raise ValueError(f"floats are not allowed in journal bodies: {value}")


def canonical_bytes(value: Any) -> bytes:
    """Encode sorted, compact, UTF-8 JSON; refuse floats so money stays exact."""
    _check_no_float(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _check_no_float(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError(f"float {value!r} in a journal body; use integer minor units")
    if isinstance(value, dict):
        for item in value.values():
            _check_no_float(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_no_float(item)


# One decoder for every call: json.loads with keyword arguments builds a new
# decoder (and scanner) per call, which doubled the cost of `stallbox verify`.
_DECODER = json.JSONDecoder(parse_float=_refuse_float)


def parse_canonical(raw: bytes) -> Any:
    """Decode a stored body, refusing floats as the encoder does."""
    return _DECODER.decode(raw.decode("utf-8"))


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """Return SHA-256(prev_hash ‖ body), the link of one event to the chain."""
    return hashlib.sha256(prev_hash + body).digest()
