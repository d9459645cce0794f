"""Canonical JSON: the exact bytes an event's hash is taken over."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

GENESIS_HASH = bytes(32)

# orjson encodes and decodes a sale's body in a tenth of the stdlib's time, but
# it writes NaN as null, takes floats silently and encodes types the stdlib
# refuses. So its answer is used only for values made of exactly dict, list,
# tuple, str, int, bool and None, where both give the same bytes
# (tests/test_canonical_orjson.py checks that on generated values); anything
# else, and anything orjson refuses (ints beyond 64 bits, non-str keys, deep
# nesting), goes the stdlib's way and gets the stdlib's answer or error.
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | \
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_AS_GIVEN = _SORTED & ~orjson.OPT_SORT_KEYS


def _plain(value: Any) -> bool:
    """Say whether value holds only dict, list, tuple, str, int, bool and None,
    each exactly that type (no float, no subclass)."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is str or kind is int or kind is bool or value is None
    for item in items:
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if not (kind is dict or kind is list or kind is tuple) or not _plain(item):
            return False
    return True


def _fast(value: Any, option: int) -> bytes | None:
    """Return orjson's encoding of a plain value, or None for the stdlib's way."""
    try:
        encoded = orjson.dumps(value, option=option)
        return encoded if _plain(value) else None
    except (orjson.JSONEncodeError, RecursionError):
        return None


def _refuse_float(value: str) -> Any:
    raise ValueError(f"floats are not allowed in journal bodies: {value}")


# One encoder for every call: json.dumps with keyword arguments builds a new
# encoder per call, a measurable share of a sale's cost in the writer thread.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"),
                            ensure_ascii=False, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    """Encode sorted, compact, UTF-8 JSON; refuse floats so money stays exact."""
    encoded = _fast(value, _SORTED)
    return encoded if encoded is not None else _stdlib_canonical(value)


def _stdlib_canonical(value: Any) -> bytes:
    try:
        text = _ENCODER.encode(value)
    except ValueError as err:  # NaN or an infinity (allow_nan=False), or a cycle
        if str(err).startswith("Out of range float"):
            raise TypeError(f"{err} in a journal body; use integer minor "
                            "units") from err
        raise
    if _may_hold_float(text):
        _refuse_floats(value)
    return text.encode("utf-8")


def _may_hold_float(text: str) -> bool:
    """Say whether encoded JSON may hold a float; False proves it holds none.

    The C encoder writes a finite float as ``float.__repr__``, which always has
    a '.' or a signed exponent ('1.5', '1e+16', '5e-324'). Outside strings the
    encoder writes nothing else with '.', 'e+' or 'e-': ints are digits, and
    'true'/'false' end before ',', ']' or '}'. Without a backslash every '"'
    delimits a string, so the even-numbered pieces of a split on '"' are all the
    text outside strings. A backslash (an escaped quote or control character)
    answers True and the caller walks the value: slower, never wrong. Scanning
    a sale's 2.5 kB body takes about half as long as walking its 150 values.
    """
    if "\\" in text:
        return True
    outside = " ".join(text.split('"')[::2])
    return "." in outside or "e+" in outside or "e-" in outside


def _refuse_floats(value: Any) -> None:
    found = _find_float(value)
    if found is not None:
        raise TypeError(f"float {found!r} in a journal body; use integer minor "
                        "units")


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def compact_bytes(value: Any) -> bytes:
    """Encode a read-model blob (never hashed): compact UTF-8 JSON, keys as given."""
    encoded = _fast(value, _AS_GIVEN)
    return encoded if encoded is not None else _COMPACT.encode(value).encode("utf-8")


def _find_float(value: Any) -> float | None:
    """Return the first float nested in value, or None (a loop, not recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float or isinstance(item, float):
            return float(item)
    return None


# One decoder for every call: json.loads with keyword arguments builds a new
# decoder (and scanner) per call, which doubled the cost of `stallbox verify`.
# NaN and the infinities are refused too: the encoder never writes them.
_DECODER = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)


def _fast_loads(text: bytes | str) -> Any:
    """Return orjson's decoding of text if it is plain, else _SLOW."""
    try:
        value = orjson.loads(text)
        return value if _plain(value) else _SLOW
    except (orjson.JSONDecodeError, RecursionError):
        return _SLOW


_SLOW = object()


def parse_canonical(raw: bytes) -> Any:
    """Decode a stored body, refusing floats as the encoder does."""
    value = _fast_loads(raw)
    return value if value is not _SLOW else _DECODER.decode(raw.decode("utf-8"))


DATA_HEAD = '{"data":'
_WHITE = " \t\n\r"


def parse_data(text: str, end: int) -> Any:
    """Decode the data value of a body's text, which must span [8, end).

    The caller has checked the tail after end (kind, seq, ts); together the
    whole body is then known to be {"data": ..., "kind", "seq", "ts"}.
    """
    if not text.startswith(DATA_HEAD):
        raise ValueError("the body does not start with its data")
    start = len(DATA_HEAD)
    # orjson skips white space around the value; the stdlib's raw_decode, whose
    # errors are the ones callers see, does not.
    if start < end <= len(text) and text[start] not in _WHITE \
            and text[end - 1] not in _WHITE:
        data = _fast_loads(text[start:end])
        if data is not _SLOW:
            return data
    data, stop = _DECODER.raw_decode(text, start)
    if stop != end:
        raise ValueError(f"unexpected text at character {stop}")
    return data


def chain_hash(prev_hash: bytes, body: bytes) -> bytes:
    """Return SHA-256(prev_hash ‖ body), the link of one event to the chain."""
    return hashlib.sha256(prev_hash + body).digest()
