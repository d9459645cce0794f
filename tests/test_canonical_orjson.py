"""orjson is canonical.py's fast path: it must give the stdlib's bytes, values
and errors, and hand everything it would treat differently to the stdlib."""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.journal.canonical import (
    DATA_HEAD,
    _stdlib_canonical,
    canonical_bytes,
    compact_bytes,
    parse_canonical,
    parse_data,
)
from tests.test_canonical import VALUES

STDLIB = json.JSONDecoder()
BIG = st.integers(min_value=-(1 << 80), max_value=1 << 80)
WIDE_VALUES = st.recursive(
    st.none() | st.booleans() | BIG | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


class Colour(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


@dataclass
class Point:
    x: int


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except Exception as err:  # noqa: BLE001 - the error's type is the point
        return ("error", type(err))


@settings(max_examples=400, deadline=None)
@given(WIDE_VALUES)
def test_encoding_equals_the_stdlibs_for_any_value(value: Any) -> None:
    assert _outcome(canonical_bytes, value) == _outcome(_stdlib_canonical, value)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_read_models_keep_key_order_and_match_the_stdlib(value: Any) -> None:
    stdlib = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert compact_bytes(value) == stdlib


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_decoding_equals_the_stdlibs(value: Any) -> None:
    raw = canonical_bytes(value)
    assert parse_canonical(raw) == STDLIB.decode(raw.decode())
    text = DATA_HEAD + raw.decode() + ',"kind":"k"}'
    assert parse_data(text, len(DATA_HEAD) + len(raw.decode())) == value


@pytest.mark.parametrize("value", [
    {"n": 1 << 64}, {"n": -(1 << 70)}, [Colour.RED], {"t": Tag("x")}, {1: "a"},
    (1, "a"), {"deep": json.loads("[" * 300 + "1" + "]" * 300)},
])
def test_values_orjson_refuses_or_would_change_take_the_stdlibs_way(value: Any) -> None:
    assert canonical_bytes(value) == _stdlib_canonical(value)


@pytest.mark.parametrize("value", [
    {"id": uuid.UUID(int=5)}, {"at": datetime.datetime(2026, 1, 1)}, {"p": Point(1)},
    {"s": "\ud800"}, {"f": float("nan")}, [1.5],
])
def test_what_the_stdlib_refuses_stays_refused(value: Any) -> None:
    with pytest.raises(Exception) as fast:
        canonical_bytes(value)
    with pytest.raises(Exception) as slow:
        _stdlib_canonical(value)
    assert fast.type is slow.type


@pytest.mark.parametrize("raw", [
    b'{"a":1.0}', b'{"a":1e5}', b'{"a":NaN}', b'{"a":-Infinity}',
    b'[18446744073709551616]',
    b'{"a":"\\ud800"}', b'\xef\xbb\xbf{"a":1}', b'{"a":"x\x01"}', b'{"a":1', b'\xff',
    b'{"a":1,"a":2}', b' {"a": 1} ', b'[' * 2000 + b']' * 2000,
])
def test_hostile_and_odd_bodies_decode_as_the_stdlib_decides(raw: bytes) -> None:
    def stdlib(data: bytes) -> Any:
        from daemon.journal.canonical import _DECODER
        return _DECODER.decode(data.decode("utf-8"))
    assert _outcome(parse_canonical, raw) == _outcome(stdlib, raw)


def test_floats_and_nan_are_refused_when_read() -> None:
    for raw in (b'{"a":1.5}', b'{"a":NaN}', b'{"a":Infinity}'):
        with pytest.raises(ValueError, match="floats are not allowed"):
            parse_canonical(raw)


@pytest.mark.parametrize("inner", [' {"a":1}', '{"a":1} ', '{"a":1}\n', '{"a":1}x'])
def test_parse_data_refuses_what_the_stdlib_scanner_refuses(inner: str) -> None:
    text = DATA_HEAD + inner + ',"kind":"k"}'
    with pytest.raises(ValueError):
        parse_data(text, len(DATA_HEAD) + len(inner))
