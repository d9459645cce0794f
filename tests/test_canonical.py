"""Canonical JSON: exact bytes, and no float ever reaches a journal body."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.journal.canonical import canonical_bytes, parse_canonical

# Text with the characters that matter to the encoder and to the float scan:
# quotes, backslashes, control characters, '.', 'e+', 'e-', non-ASCII.
CHARS = st.sampled_from(list('ab"\\\n\x01.e+-1 é€\u2028')) | st.characters(
    codec="utf-8")
TEXT = st.text(CHARS, max_size=12)
SCALARS = st.none() | st.booleans() | st.integers() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner,
                                                                max_size=4),
    max_leaves=25)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def reference_bytes(value: Any) -> bytes:
    """The spec, spelled the slow way: sorted keys, no spaces, UTF-8, no floats."""
    if _holds_float(value):
        raise TypeError("float")
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def _holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_float(v) for v in value)
    return False


def _with_float(value: Any, number: float, path: list[int]) -> Any:
    """Return value with number put somewhere inside it (path picks where)."""
    if isinstance(value, list) and value and path:
        i = path[0] % len(value)
        return [*value[:i], _with_float(value[i], number, path[1:]), *value[i + 1:]]
    if isinstance(value, dict) and value and path:
        key = sorted(value)[path[0] % len(value)]
        return {**value, key: _with_float(value[key], number, path[1:])}
    if isinstance(value, list):
        return [*value, number]
    if isinstance(value, dict):
        return {**value, "x": number}
    return [value, number]


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_bytes_equal_the_spec_and_read_back(value: Any) -> None:
    encoded = canonical_bytes(value)

    assert encoded == reference_bytes(value)
    assert parse_canonical(encoded) == value


@settings(max_examples=400, deadline=None)
@given(VALUES, FLOATS, st.lists(st.integers(0, 7), max_size=4))
def test_a_float_anywhere_is_refused(value: Any, number: float,
                                     path: list[int]) -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_bytes(_with_float(value, number, path))


@pytest.mark.parametrize("number", [1.5, -0.0, 2.0, 1e16, 5e-324, 1e300, math.inf,
                                    -math.inf, math.nan])
def test_floats_that_print_like_integers_are_refused(number: float) -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_bytes({"label": 'say "1.5"', "items": [{"price": number}]})


def test_strings_that_look_like_floats_are_kept() -> None:
    body = {"a": "1.5", "b": "1e+16", "c": "5e-324", "d": True, "e": False,
            "f": 'quote " 2.5', "g": "back\\slash 1e-7"}

    assert parse_canonical(canonical_bytes(body)) == body


def test_golden_event_body() -> None:
    body = {"data": {"name": "Crème brûlée", "qty": 2, "note": 'say "hi"\n',
                     "tags": ["b", "a"], "ok": True, "none": None},
            "kind": "sale.completed", "seq": 7, "ts": "2024-05-01T10:00:00.000000Z"}

    assert canonical_bytes(body) == (
        '{"data":{"name":"Crème brûlée","none":null,"note":"say \\"hi\\"\\n",'
        '"ok":true,"qty":2,"tags":["b","a"]},"kind":"sale.completed","seq":7,'
        '"ts":"2024-05-01T10:00:00.000000Z"}').encode()


def test_a_cycle_is_refused_not_walked_forever() -> None:
    body: dict[str, Any] = {"a": 1}
    body["self"] = body

    with pytest.raises(ValueError, match="Circular"):
        canonical_bytes(body)
