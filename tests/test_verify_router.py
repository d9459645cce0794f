"""Which observers the verifier's walk feeds, and when it decodes a body.

The router's answer is cached per kind over a span of seqs, and an observer's
`needs` lets the walk skip decoding a body that cannot matter to it: a walk
that feeds less than it should would check less, so these pin it down.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daemon.journal import verify
from daemon.journal.verify import ALL_SEQS, _Router, verify_journal
from daemon.keys.epoch import CERT_KIND
from daemon.runtime import JOURNAL_FILE
from daemon.trust.replay import replay_observers
from tests.test_giftcards import Chf, call, chf, verify_an_edited_balance  # noqa: F401 - chf is a fixture
from tests.test_sale_billing import body, cash


class Seen:
    """An observer that records what it is fed."""

    def __init__(self, kinds: set[str], seq_range: tuple[int, int] = ALL_SEQS,
                 unparsed: frozenset[str] = frozenset(),
                 needs: dict[str, bytes] | None = None) -> None:
        self.kinds = frozenset(kinds)
        self.seq_range = seq_range
        self.unparsed = unparsed
        self.needs = needs or {}
        self.parsers: dict[str, Any] = {}


def _fed(router: _Router, kind: str, seq: int, body: Any = b"{}") -> tuple[list[Any],
                                                                           bool]:
    return router.targets(kind, seq, body)


def test_ranges_are_honoured_on_both_sides_of_every_edge() -> None:
    low, high, every = (Seen({"a"}, (10, 20)), Seen({"a"}, (21, 30)),
                        Seen({"a", "b"}))
    router = _Router([low, high, every])
    for seq in (1, 9, 10, 15, 20, 21, 25, 30, 31, 10 ** 9, 20, 10, 9, 1, 30):
        wanted = [o for o in (low, high, every)
                  if o.seq_range[0] <= seq <= o.seq_range[1]]
        assert _fed(router, "a", seq) == (wanted, True), seq
    assert _fed(router, "b", 15) == ([every], True)
    assert _fed(router, "c", 15) == ([], False)


def test_certificates_reach_an_observer_outside_its_range() -> None:
    ranged = Seen({"a", CERT_KIND}, (10, 20))
    router = _Router([ranged])
    assert _fed(router, CERT_KIND, 5) == ([ranged], True)
    assert _fed(router, CERT_KIND, 50) == ([ranged], True)
    assert _fed(router, "a", 50) == ([], False)


def test_a_kind_the_caller_needs_is_decoded_even_without_observers() -> None:
    plain = Seen({"a"}, unparsed=frozenset({"a"}))
    router = _Router([plain], parsed=frozenset({CERT_KIND}))
    assert _fed(router, "a", 1) == ([plain], False)
    assert _fed(router, CERT_KIND, 1) == ([], True)


@pytest.mark.parametrize(("body", "fed"), [
    (b'{"data":{"id":"x"},"kind":"a","seq":1,"ts":"t"}', False),
    (b'{"data":{"gift_cards":{"issued":[]}},"kind":"a","seq":1,"ts":"t"}', True),
    # an escape could spell the key without its plain text: decode, feed
    (b'{"data":{"gift_\\u0063ards":{}},"kind":"a","seq":1,"ts":"t"}', True),
    (b'{"data":{"name":"a \\"quoted\\" name"},"kind":"a","seq":1,"ts":"t"}', True),
    ('{"data":{},"kind":"a","seq":1,"ts":"t"}', True),  # TEXT: the walk fails it
])
def test_needs_spares_decoding_only_bodies_that_cannot_matter(
        body: Any, fed: bool) -> None:
    cards = Seen({"a"}, needs={"a": b'"gift_cards"'})
    jobs = Seen({"a"}, unparsed=frozenset({"a"}))
    router = _Router([cards, jobs])
    targets, parse = _fed(router, "a", 1, body)
    assert (targets, parse) == (([cards, jobs], True) if fed else ([jobs], False))


def test_needs_is_ignored_where_the_body_is_decoded_anyway() -> None:
    cards = Seen({"a"}, needs={"a": b'"gift_cards"'})
    sales = Seen({"a"}, (1, 10))
    router = _Router([cards, sales])
    assert _fed(router, "a", 5, b'{"data":{}}') == ([cards, sales], True)
    assert _fed(router, "a", 11, b'{"data":{}}') == ([], False)
    assert _fed(router, "a", 11, b'{"data":{"gift_cards":1}}') == ([cards], True)


@pytest.mark.parametrize("child_share", [0.0, 1.0])
async def test_the_split_walk_replays_gift_cards_wherever_the_sale_falls(
        chf: Chf, state_dir: Path, child_share: float,  # noqa: F811 - fixture
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With share 0 every sale is past the chain process's share: it decodes
    only the sales that carry a gift-card part, and must still replay them."""
    monkeypatch.setattr(verify, "CHILD_SHARE", child_share)
    await call(chf, "/api/v1/sales", body([("SEIFE", 1)], cash(2000)), 201)
    seq, result = await verify_an_edited_balance(chf, state_dir, processes=2)
    assert result.bad_seq == seq and "gift_cards" in result.reason, result


def test_claims_share_blocks_out_in_order_and_stop_past_a_fault(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setattr(verify, "BLOCK_MIN_SEQS", 10)
    claims = verify._Claims(multiprocessing.get_context("fork"))
    claims.cut(45)  # blocks 1-10, 11-20, 21-30, 31-40, 41 on
    assert [claims.span(b) for b in (0, 3, 4)] == [(1, 10), (31, 40),
                                                   (41, ALL_SEQS[1])]
    assert [claims.block_of(s) for s in (1, 10, 11, 45, 10 ** 6)] == [0, 0, 1, 4, 4]
    assert claims.take(0)  # the chain process enters block 0 first
    assert claims.next_block() == 1
    assert not claims.take(1)  # taken by the replay process
    assert claims.take(2)
    claims.stop_at(35)
    assert claims.next_block() == 3  # 31-40 holds the fault: replayed
    assert claims.next_block() is None and not claims.take(4)


def test_a_reserved_share_is_the_chain_process_s_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setattr(verify, "BLOCK_MIN_SEQS", 10)
    monkeypatch.setattr(verify, "CHILD_SHARE", 0.5)
    monkeypatch.setattr(verify, "CLAIMING", False)
    claims = verify._Claims(multiprocessing.get_context("fork"))
    claims.cut(40)
    assert claims.take(0) and claims.take(1)
    assert [claims.next_block() for _ in range(3)] == [2, 3, None]
    assert not claims.take(2)


@pytest.mark.parametrize("at", ["certificate", "shift close"])
async def test_a_sales_row_in_a_block_without_sales_is_named(
        aiohttp_client: Any, config: Any, tmp_path: Path, at: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of one seq: the block of a non-sale event must still be replayed."""
    from tests.test_trust import _device_public, _journal_after_a_shift, _tamper

    monkeypatch.setattr(verify, "BLOCK_MIN_SEQS", 1)
    monkeypatch.setattr(verify, "BLOCKS_PER_JOURNAL", 10 ** 6)
    state = await _journal_after_a_shift(aiohttp_client, config)
    src = state / JOURNAL_FILE
    kind = CERT_KIND if at == "certificate" else "shift.closed"
    seq = sqlite3.connect(src).execute(
        "SELECT MAX(seq) FROM events WHERE kind = ?", (kind,)).fetchone()[0]
    assert verify_journal(src, _device_public(state), observers=replay_observers(),
                          processes=2).ok
    edited = _tamper(src, tmp_path / "j.sqlite3",
                     "INSERT INTO sales (id, seq, client_ref, created_at, tablet,"
                     " total_minor, currency, status, receipt) SELECT 'x' || id, ?,"
                     " 'x' || client_ref, created_at, tablet, total_minor, currency,"
                     " status, receipt FROM sales LIMIT 1", (seq,))
    result = verify_journal(edited, _device_public(state),
                            observers=replay_observers(), processes=2)
    assert result.bad_seq == seq and "no event made" in result.reason, result
