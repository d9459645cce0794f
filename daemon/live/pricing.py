"""The sale flow's live-price step, run inside the sale's own transaction.

``service.create_sale`` (and ``payments.card_sale.open_card_sale`` for a card
sale) calls ``LivePricing.apply`` after it read the products and before it
prices them. Live prices are read from ``live_offers`` in the
writer's transaction, not from the loop's board, so the decision and the cap
decrement are serialised by the single journal writer: twenty tablets selling
against a cap of five get exactly five live prices, whatever the interleaving.

Policy for a line whose quantity does not fit under what is left of a cap:
the whole line sells at the normal price (a sale never splits a line, and
never fails because a flash drop ran out). Quantities of the same sku on
several lines count together.

The sale's event gets a ``live`` part (the active stream, and per live line
its pin or flash event, live and normal unit price), and ``live_sales`` keeps
the stream per client_ref for revenue per stream.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from daemon.journal.canonical import canonical_bytes
from daemon.journal.store import Tx
from daemon.live.board import OFFER_COLUMNS, LiveBoard, Offer, offer_from_row

_LOG = logging.getLogger(__name__)
LIVE_LABEL = "Live price"
SaleListener = Callable[[str, tuple[str, ...]], None]


class LivePricing:
    """Apply live prices and caps to a sale's products, and attribute the sale."""

    def __init__(self, board: LiveBoard, clock: Callable[[], float] = time.time
                 ) -> None:
        self._board = board
        self._clock = clock
        self.sale_listeners: list[SaleListener] = []
        self._generation = 0  # bumped in the writer before live rows change
        self._index: _Index | None = None  # computed in the writer thread
        self._confirmed: _Index | None = None  # set on the loop after its commit

    def touch(self) -> None:
        """Say, in the writer's transaction, that live offers or streams change.

        Call it before writing ``live_offers`` or ``live_streams``: the index of
        what is active is then read again before the next sale trusts it.
        """
        self._generation += 1

    def apply(self, tx: Tx, request: Any, products: Mapping[str, Any], *,
              completed: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (products with live prices, the event's live part or {}).

        A sale not ``completed`` yet (a card sale waiting for the card) counts
        against caps but is not told to the sale listeners (conversions): the
        display counts it when the card is approved.
        """
        qty = Counter[str]()
        for sku, n in request.lines:
            qty[sku] += n
        if self._quiet(tx):  # no stream, no live price valid now: nothing to read
            if completed and self.sale_listeners:
                self._after_commit(tx, request, [], qty, completed)
            return dict(products), {}
        offers = _valid_offers(tx, sorted(qty), self._clock())
        out, lines = dict(products), []
        for offer in offers:
            product = out.get(offer.sku)
            price = offer.price_for(qty[offer.sku], 0)  # SQL checked the time
            if product is None or price is None or product.gift_card:
                continue  # a gift card is sold at its face value only
            out[offer.sku] = live_product(product, price)
            lines.append(_line_part(offer, product.price_minor))
            _count_sold(tx, offer, qty[offer.sku])
        part = self._attribute(tx, request, lines, products)
        self._after_commit(tx, request, lines, qty, completed)
        return out, part

    def _quiet(self, tx: Tx) -> bool:
        """Return True if no stream is active and no live price is valid now.

        Decided from an index of the live rows (the latest end of a priced
        offer, whether a stream is active) held in the writer, so a sale
        without live selling reads no live table. The index counts only once
        the batch it was read in committed (a rolled-back live event must not
        leave it behind) and while no live event came since; until then this
        answers False and the sale reads the tables. An offer's end is
        compared with the clock at each sale, so it expires at its exact time.
        """
        index = self._index
        if (index is None or index.generation != self._generation
                or self._confirmed is not index):
            until_s, streaming = _read_index(tx)
            index = self._index = _Index(self._generation, until_s, streaming)
            tx.after_commit(lambda: self._confirm(index))
            return False
        return not index.streaming and self._clock() >= index.until_s

    def _confirm(self, index: _Index) -> None:
        self._confirmed = index

    def _attribute(self, tx: Tx, request: Any, lines: list[dict[str, Any]],
                   products: Mapping[str, Any]) -> dict[str, Any]:
        """Return the live part and keep the stream per client_ref."""
        stream = _active_stream(tx)
        if stream is None and not lines:
            return {}
        stream_id = stream or next((ln["stream_id"] for ln in lines), "")
        part = {"stream_id": stream_id, "lines": lines}
        tx.execute("INSERT OR REPLACE INTO live_sales (client_ref, stream_id, body)"
                   " VALUES (?, ?, ?)",
                   (request.client_ref, stream_id, canonical_bytes(part)))
        return {"live": part}

    def _after_commit(self, tx: Tx, request: Any, lines: Sequence[dict[str, Any]],
                      qty: Counter[str], completed: bool) -> None:
        board, listeners = self._board, self.sale_listeners if completed else []
        skus = tuple(qty)
        tablet = str(getattr(request, "tablet", ""))

        def committed() -> None:
            for line in lines:
                board.sold(line["sku"], qty[line["sku"]])
            for listener in listeners:
                listener(tablet, skus)

        tx.after_commit(committed)


    def release(self, tx: Tx, data: dict[str, Any]) -> None:
        """Give a cancelled sale's units back to the flash caps it counted in.

        A card sale counts its units when it is opened (so tablets cannot
        oversell while the customer taps); cancelled unpaid, they go back to
        the offer it counted them in, if that offer still runs.
        """
        qty = Counter[str]()
        for line in data.get("lines", ()):
            if line.get("kind", "goods") == "goods":
                qty[line["sku"]] += line["qty"]
        board = self._board
        for line in data.get("live", {}).get("lines", ()):
            if line["kind"] != "flash" or not qty[line["sku"]]:
                continue
            done = tx.execute(
                "UPDATE live_offers SET sold = max(sold - ?, 0) WHERE sku = ?"
                " AND event_id = ?", (qty[line["sku"]], line["sku"], line["event_id"]))
            if done.rowcount:
                tx.after_commit(lambda sku=line["sku"], n=qty[line["sku"]]:
                                board.sold(sku, -n))


@dataclass(frozen=True, slots=True)
class _Index:
    """The latest end of a priced offer and whether a stream is active."""

    generation: int
    until_s: float
    streaming: bool


def _read_index(tx: Tx) -> tuple[float, bool]:
    until = tx.execute("SELECT max(until_s) FROM live_offers"
                       " WHERE price_minor IS NOT NULL").fetchone()[0]
    stream = tx.execute("SELECT 1 FROM live_streams WHERE active = 1 LIMIT 1"
                        ).fetchone()
    return (float("-inf") if until is None else until), stream is not None


def _valid_offers(tx: Tx, skus: Sequence[str], now_s: float) -> list[Offer]:
    marks = ",".join("?" * len(skus))
    rows = tx.execute(
        f"SELECT {OFFER_COLUMNS} FROM live_offers WHERE until_s > ?"
        f" AND price_minor IS NOT NULL AND sku IN ({marks}) ORDER BY sku",
        (now_s, *skus)).fetchall()
    return [offer_from_row(row) for row in rows]


def live_product(product: Any, price_minor: int) -> Any:
    """Return the product at its live price, its name marked for the receipt."""
    return replace(product, price_minor=price_minor,
                   name=f"{product.name} · {LIVE_LABEL}")


def _line_part(offer: Offer, normal_minor: int) -> dict[str, Any]:
    return {"sku": offer.sku, "kind": offer.kind, "event_id": offer.event_id,
            "stream_id": offer.stream_id, "unit_minor": offer.price_minor,
            "normal_minor": normal_minor}


def _count_sold(tx: Tx, offer: Offer, qty: int) -> None:
    if offer.cap is not None:
        tx.execute("UPDATE live_offers SET sold = sold + ? WHERE sku = ?",
                   (qty, offer.sku))


def _active_stream(tx: Tx) -> str | None:
    """Return the active stream whose start was journaled last.

    Journal order, not started_t: integrations send whole seconds, so streams
    started in one second would tie. An active row's seq is its last start.
    """
    row = tx.execute("SELECT id FROM live_streams WHERE active = 1"
                     " ORDER BY seq DESC LIMIT 1").fetchone()
    return str(row[0]) if row else None
