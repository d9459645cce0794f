"""The sales replay's body decoder must decode and refuse exactly what the
verifier's default decoder (parse_body) does: it is only a faster way there."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.journal.canonical import canonical_bytes
from daemon.journal.verify import parse_body
from daemon.trust.replay import MEMO_ENTRIES, _SaleParser

CARBON = {"estimate": {"total_kg": "1/3", "lines": [["TEE", "f", "1/2", True]]},
          "flags": [], "record": {"currency": "EUR", "lines": []}}
DATA = {"carbon": CARBON, "cash_rounding": [1, "half_up"], "change_minor": 770,
        "id": "0000000003680d2f", "footer": ["Danke für Ihren Einkauf!"],
        "lines": [{"name": "Tee \"grün\"", "qty": 2, "sku": "TEE"}],
        "payments": [{"amount_minor": 1230, "method": "cash"}], "total_minor": 1230}
TAIL = b',"kind":"sale.completed","seq":7,"ts":"2026-12-04T21:13:30.946202Z"}'


def _body(data: Any = None) -> bytes:
    return canonical_bytes({"data": DATA if data is None else data,
                            "kind": "sale.completed", "seq": 7,
                            "ts": "2026-12-04T21:13:30.946202Z"})


def _both(body: bytes) -> tuple[Any, Any]:
    """Return what each decoder gives (or the class of what it raises)."""
    answers = []
    for parse in (_SaleParser(), parse_body):
        try:
            answers.append(parse(body, len(body) - len(TAIL)))
        except ValueError:
            answers.append(ValueError)
    return answers[0], answers[1]


def test_a_canonical_sale_decodes_the_same_twice_over() -> None:
    body, parser = _body(), _SaleParser()
    assert body.endswith(TAIL)
    first = parser(body, len(body) - len(TAIL))
    again = parser(body, len(body) - len(TAIL))  # the carbon part from the memo
    assert first == again == parse_body(body, len(body) - len(TAIL)) == DATA


def _swap(old: bytes, new: bytes) -> bytes:
    body = _body()
    assert old in body
    return body.replace(old, new, 1)


@pytest.mark.parametrize("body", [
    _swap(b',"cash_rounding":', b' ,"cash_rounding":'),  # white space after carbon
    _swap(b'{"carbon":', b'{"carbon": '),  # before the carbon part
    _swap(b'"total_minor":1230}', b'"total_minor":1230 }'),  # inside the data
    _swap(b'"total_minor":1230}', b'"total_minor":1230} '),  # after the data
    _swap(b'"total_minor":1230', b'"total_minor":12.30'),  # a float in the rest
    _swap(b'"1/3"', b'0.5'),  # a float in the carbon part
    _swap(b'"change_minor":770', b'"change_minor":NaN'),
    _swap(b'"1/3"', b'"\xff"'),  # not UTF-8, in the carbon part
    _swap(b'"cash"', b'"c\xc3"'),  # not UTF-8, in the rest
    _swap(b'{"carbon":{', b'{"carbon":[{').replace(b'},"cash_rounding"',
                                                 b'}],"cash_rounding"'),
    _swap(b',"cash_rounding":[1,"half_up"]', b''),  # nothing to split at
    _swap(b'"flags":[]', b'"flags":[],"cash_rounding":1'),  # the key inside carbon
    _body({"carbon": None, "cash_rounding": 1}),
    _body({"cash_rounding": 1, "id": "x"}),
    _swap(b'"total_minor":1230}', b'"total_minor":1230}}'),
    _swap(b'"total_minor":1230}', b'"total_minor":1230'),
])
def test_odd_and_broken_bodies_get_the_default_decoder_s_answer(body: bytes) -> None:
    fast, default = _both(body)
    assert fast == default


def test_the_memo_stays_bounded() -> None:
    parser = _SaleParser()
    for n in range(MEMO_ENTRIES * 2 + 3):
        carbon = {**CARBON, "flags": [n]}
        body = _body({**DATA, "carbon": carbon})
        assert parser(body, len(body) - len(TAIL))["carbon"] == carbon
    assert len(parser.memo) <= MEMO_ENTRIES
