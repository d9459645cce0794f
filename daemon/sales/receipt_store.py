"""A sale's receipt record: read from its event, plus what the event lacks.

A receipt shows the values of its sale's event (``sale.completed``, or
``sale.pending`` while a card sale waits) and two things no sale event holds.
The sales row's ``receipt`` column stores only those, as compact JSON led by
its format, keys always in this order:

    {"v":2,"terminal_lines":[...],"excerpt":"SB1|..."}

- ``terminal_lines``: a card terminal's slip, printed with the receipt when
  the stall asks for it; it comes with the payment events, not the sale's.
- ``excerpt``: the signed QR text ('' in an unsigned journal), completed
  sales only. Its signed part follows from the event, the epoch key live at
  the sale and the stall id its certificate names; its signature follows from
  nothing stored.

Everything else is taken from the event at the row's seq when a receipt is
read (``merge``): seq, id, lines, taxes, totals, payments, header, footer,
local time, discount, and the carbon block. The block's text is formatted
from the figures the event recorded (``RecordedEstimate``), as every other
line of the receipt is formatted from its values when it is printed; the
verifier always required stored carbon lines to equal that formatting byte
for byte, so storing them kept nothing the event did not. The result is the
record the sale service stored whole before (about 1.5 kB a sale, two
overflow pages more than the row needs now), nested objects in the event's
sorted key order. Rows written in that older form have no ``"v"`` key first
(``is_slim``) and are read as stored; `stallbox verify` checks each row in its
own form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from daemon.billing.carbon import GRAMS_PER_KG, receipt_lines
from daemon.billing.rounding import div_round
from daemon.errors import NotFoundError
from daemon.journal.canonical import compact_bytes, parse_canonical

SLIM_HEAD = b'{"v":2'
MEMO_ENTRIES = 256  # distinct carbon estimates whose receipt text is kept
STORED_KEYS = ("terminal_lines", "excerpt")
EVENT_KEYS = ("id", "currency", "lines", "taxes", "total_minor", "payments",
              "change_minor", "header", "footer", "local_time", "rounding_minor")


def as_bytes(raw: bytes | str | memoryview) -> bytes:
    """Return a stored receipt as bytes (an edit by hand may leave it TEXT)."""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def is_slim(raw: bytes) -> bool:
    """Say whether a stored receipt holds only what its event lacks."""
    return raw.startswith(SLIM_HEAD)


def field_bytes(key: str, value: Any) -> bytes:
    """Encode one stored key as it follows the format in the row: ',"key":value'."""
    return b',"' + key.encode("ascii") + b'":' + compact_bytes(value)


def encode(stored: Mapping[str, Any]) -> bytes:
    """Encode the stored part of a receipt, its keys in their fixed order."""
    return SLIM_HEAD + b"".join(field_bytes(key, stored[key]) for key in STORED_KEYS
                                if key in stored) + b"}"


def stored_of(raw: bytes | str | memoryview) -> dict[str, Any]:
    """Return the keys no event holds from a stored receipt of either form."""
    record = parse_canonical(as_bytes(raw))
    return {key: record[key] for key in STORED_KEYS if key in record}


def head(data: Mapping[str, Any], seq: int) -> dict[str, Any]:
    """Return the receipt record's keys taken as they are from the event."""
    return {"seq": seq, **{key: data[key] for key in EVENT_KEYS},
            "sale_discount": data.get("sale_discount")}


def merge(data: Mapping[str, Any], seq: int, stored: Mapping[str, Any]
          ) -> dict[str, Any]:
    """Return the whole receipt record of the sale event at seq."""
    record = head(data, seq)
    carbon = data.get("carbon")
    if carbon is not None:
        recorded, flags = carbon["estimate"], carbon["flags"]
        text, grams = _figures(recorded)
        record["carbon_lines"] = [*text, *_flag_note(flags)]
        record["carbon"] = _summary(grams, recorded["method"], recorded["datasets"],
                                    flags)
        record["methodology_url"] = carbon["methodology_url"]
    for key in STORED_KEYS:
        if key in stored:
            record[key] = stored[key]
    return record


def record_of(raw: bytes | str | memoryview, seq: int,
              body: bytes | None) -> dict[str, Any]:
    """Return the receipt record of a sales row from its receipt and event body."""
    raw = as_bytes(raw)
    if not is_slim(raw):
        return dict(parse_canonical(raw))  # the whole record, as written before
    if body is None:
        raise NotFoundError(f"the event at seq {seq} of this receipt is missing")
    return merge(_event_data(bytes(body)), seq, parse_canonical(raw))


def _event_data(body: bytes) -> Any:
    """Return the data of a sale event's stored body.

    orjson alone: the body was written by canonical_bytes, which refused
    floats, and parse_canonical's check that no float came back walks all of
    its ~150 values (a third of a receipt's read). An event altered in the
    database shows in `stallbox verify`, not here; a body orjson cannot read
    goes the checked way.
    """
    try:
        return orjson.loads(body)["data"]
    except orjson.JSONDecodeError:
        return parse_canonical(body)["data"]


def load_record(conn: Any, sale_id: str) -> dict[str, Any]:
    """Return the receipt record of one sale, read with its event."""
    row = conn.execute("SELECT s.seq, s.receipt, e.body FROM sales AS s"
                       " LEFT JOIN events AS e ON e.seq = s.seq WHERE s.id = ?",
                       (sale_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no sale {sale_id!r}")
    return record_of(row[1], row[0], row[2])


class Ratio(NamedTuple):
    """A recorded 'n/d' (or 'n') as the two integers the rounding takes."""

    numerator: int
    denominator: int


def ratio(text: str) -> Ratio:
    """Read str(Fraction)'s text without a Fraction (a third of a receipt's read)."""
    top, _, bottom = text.partition("/")
    return Ratio(int(top), int(bottom) if bottom else 1)


class RecordedEstimate:
    """The figures of a carbon estimate as a sale event recorded them.

    Receipt lines and the summary are made from these, the way the sale
    service made them from the estimate itself, without the factor tables:
    both round n/d with ``div_round``, which needs no reduced fraction.
    """

    def __init__(self, recorded: Mapping[str, Any]) -> None:
        self.total_kg = ratio(recorded["total_kg"])
        self.low_kg, self.high_kg = (ratio(x) for x in recorded["range_kg"])
        self.figures_kg = (self.total_kg, self.low_kg, self.high_kg)
        self.method_id, self.method_version = recorded["method"]
        self.datasets = tuple(tuple(d) for d in recorded["datasets"])
        self.table_hash = recorded["table_hash"]
        self._text: dict[str, tuple[str, ...]] = {}  # receipt_lines caches here


_FIGURES: dict[tuple[Any, ...], tuple[tuple[str, ...], tuple[int, ...]]] = {}


def _figures(recorded: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Return an estimate's receipt text and its grams, once per distinct figures.

    Baskets repeat over a day, so a reprint or a page mostly finds them here
    instead of formatting six figures again (half the cost of a receipt read).
    """
    key = (recorded["total_kg"], *recorded["range_kg"], *recorded["method"],
           *map(tuple, recorded["datasets"]))
    found = _FIGURES.get(key)
    if found is None:
        estimate = RecordedEstimate(recorded)
        found = receipt_lines(estimate), _grams(estimate)
        if len(_FIGURES) >= MEMO_ENTRIES:
            _FIGURES.clear()
        _FIGURES[key] = found
    return found


def _flag_note(flags: Sequence[Sequence[str]]) -> list[str]:
    """Say on the receipt when the stall default stood in for a product."""
    return [f"{len(flags)} item(s) by the stall's default factor."] if flags else []


def _grams(estimate: Any) -> tuple[int, ...]:
    # n/d kg is n*1000/d g: rounding that directly skips a Fraction (and its
    # gcd) per figure; the result is the same whether or not n/d is reduced.
    # figures_kg (total, low, high) are those (n, d) pairs, for a
    # CarbonEstimate and a RecordedEstimate alike.
    return tuple(div_round(n * GRAMS_PER_KG, d, "half_up")
                 for n, d in estimate.figures_kg)


def carbon_summary(estimate: Any, flags: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Return the estimate as the API and pages show it: whole grams and range."""
    return _summary(_grams(estimate), (estimate.method_id, estimate.method_version),
                    estimate.datasets, flags)


def _summary(grams: Sequence[int], method: Sequence[str],
             datasets: Sequence[Sequence[str]], flags: Sequence[Sequence[str]]
             ) -> dict[str, Any]:
    return {"co2e_g": grams[0], "low_g": grams[1], "high_g": grams[2],
            "method": list(method), "datasets": [list(d) for d in datasets],
            "defaulted": [list(f) for f in flags]}
