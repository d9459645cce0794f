"""JSON answers through orjson decode to what the stdlib encoder would give."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from daemon.web.answer import json_answer


class Colour(enum.StrEnum):
    RED = "red"


def _decoded(response: web.Response) -> Any:
    assert response.body is not None
    return json.loads(bytes(response.body))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [
    {"id": "00000000055cd1e7", "total_minor": 1230, "sale_discount": None,
     "lines": [{"name": "Crème brûlée", "qty": 2}, {"name": "Bärlauch-Pesto"}],
     "carbon": {"datasets": [["EPA", "1.2"]]}},
    {"name": "<script>alert(1)</script>\u202e\"'\\", "emoji": "\U0001f36e"},
    [], {}, "text", 0, -(2**63), 2**63 - 1, True, None,
])
def test_plain_values_decode_to_the_same_value(value: Any) -> None:
    response = json_answer(value, status=201)
    assert response.status == 201
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    assert _decoded(response) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [
    {"big": 2**70},  # beyond 64 bits: orjson refuses, the stdlib writes it
    {1: "int key"},  # non-str key: the stdlib turns it into "1"
    {"colour": Colour.RED},  # a str subclass
    {"when": datetime(2026, 12, 4, tzinfo=UTC).isoformat()},
])
def test_values_orjson_refuses_are_answered_by_the_stdlib(value: Any) -> None:
    response = json_answer(value)
    assert _decoded(response) == json.loads(json.dumps(value))


def test_a_value_neither_encoder_takes_fails_as_before() -> None:
    with pytest.raises(TypeError):
        json_answer({"when": datetime(2026, 12, 4, tzinfo=UTC)})


def test_deep_nesting_falls_back_to_the_stdlib() -> None:
    deep: Any = []
    for _ in range(300):  # orjson's limit is 255 levels
        deep = [deep]
    assert _decoded(json_answer(deep)) == deep
