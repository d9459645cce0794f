"""Gift cards: issued by selling a gift card product, spent as a tender.

A sold unit of a product flagged ``gift_card`` issues one card worth the
unit's price, its face value, paid in full: no line discount, no share of the
sale discount (``billing.discounts``), no live price (``daemon.live``); the
card's code is printed on the receipt. A ``gift_card``
tender names a code in its ``ref``; the amount comes off that card's balance
inside the sale's journal transaction, so two tablets spending the last of a
card at once cannot both pass (the journal runs one transaction at a time):
the second gets ConflictError (HTTP 409) saying what is left. A balance never
goes below zero. A refund that pays back to a gift card puts it back on the
card it came from; a refund of the gift card product itself voids an unspent
card (a card that was spent from is refused: its value has been used).

The code is a bearer secret: whoever knows it can spend the card. It is 16
characters of Crockford base32 (80 random bits, ``XXXX-XXXX-XXXX-XXXX``),
and the journal, the sync and the ``gift_cards`` table keep only its SHA-256
(``code_hash``) and its last four characters (for the receipt and the
manager's list). The plain code exists in the sale's 201 answer to the
tablet that sold it and in the local table ``gift_card_codes``, which the
original receipt print takes it from; that print's ``print.done`` deletes the
row, so from then on the code is only on paper. An automatic reprint of an
original a crash cut off (marked REPRINT) prints it in full while the row is
still there; the receipt API, the sale page, explicit reprints and e-receipts
show it masked (``****-****-****-N6SN``). The table is neither journaled nor
synced, so no replay can rebuild it and none checks it. The code is never
logged: errors name a card by its last four characters.

A card sale (``daemon.payments.card_sale``) spends a gift card too: its
``sale.pending`` carries the ``redeemed`` part and takes it off the balance in
that transaction (a reservation: while the customer is at the terminal no
other tablet can spend it, the second gets 409); the ``sale.completed`` the
approval or the cash for the rest journals copies that part and moves no
balance again. A ``sale.cancelled`` gives it back as its ``released`` part.
Selling gift card products by card is still refused (``refuse_in_card_sale``).

Balances are a read model rebuilt from the events (``GiftCardsReplay``,
which ``stallbox verify`` runs): ``gift_cards`` in ``sale.completed`` (issued
and redeemed; redeemed only when no ``sale.pending`` of that sale reserved
it), ``sale.pending`` (redeemed, reserved), ``sale.cancelled`` (released) and
``sale.refunded`` (restored and voided).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from daemon.billing.tenders import Tender
from daemon.errors import ConflictError, InputError, NotFoundError
from daemon.journal.store import Tx
from daemon.journal.verify import Fault, has_table
from daemon.money import Currency
from daemon.sales.checkout import PricedSale, Product

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
CODE_CHARS = 16  # 80 random bits: not guessable, even offline against a hash
MAX_CODE_TEXT = 40  # what a typed code may be, separators included
MAX_CARDS_PER_SALE = 100
_READS_AS = {"O": "0", "I": "1", "L": "1"}  # Crockford: letters read as digits
HASH_PREFIX = b"stallbox gift card v1:"
KIND = "gift_card"


def new_code() -> str:
    """Return a new random card code (16 characters, no separators)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))


CODE_RULE = (f"a gift card code is {CODE_CHARS} letters and digits "
             "(0-9, A-Z without I, L, O, U)")  # every malformed code gets this


def normalize_code(text: object, field_name: str = "code") -> str:
    """Return a code as typed (any case, spaces or dashes) in its canonical form."""
    if not isinstance(text, str) or len(text) > MAX_CODE_TEXT:
        raise InputError(CODE_RULE, field=field_name)
    code = "".join(_READS_AS.get(c, c) for c in text.upper() if c not in " -")
    if len(code) != CODE_CHARS or any(c not in CODE_ALPHABET for c in code):
        raise InputError(CODE_RULE, field=field_name)
    return code


def code_hash(code: str) -> str:
    """Return the hex SHA-256 a canonical code is stored and journaled by."""
    return hashlib.sha256(HASH_PREFIX + code.encode("ascii")).hexdigest()


def shown(code: str) -> str:
    """Return a code grouped for printing: XXXX-XXXX-XXXX-XXXX."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def masked(last4: str) -> str:
    """Return the masked form of a card: only its last four characters."""
    return f"****-****-****-{last4}"


@dataclass(slots=True)
class GiftCardPlan:
    """A sale's gift card work, checked before its event is journaled."""

    request: Any  # the SaleRequest, gift card tenders masked
    redeemed: list[dict[str, Any]] = field(default_factory=list)
    issued: list[dict[str, Any]] = field(default_factory=list)
    codes: list[dict[str, Any]] = field(default_factory=list)  # plain, for print

    def event_part(self) -> dict[str, Any]:
        """Return the part of the sale event: hashes and last four only."""
        if not self.redeemed and not self.issued:
            return {}
        return {"gift_cards": {"issued": self.issued, "redeemed": self.redeemed}}


def plan_sale(tx: Tx, request: Any, currency: Currency) -> GiftCardPlan:
    """Check the request's gift card tenders against their balances; mask them.

    Raise InputError for a malformed or unknown code and ConflictError when a
    card has less left than asked (or is voided).
    """
    tenders = list(request.tenders)
    asked: dict[str, int] = {}
    last4: dict[str, str] = {}
    for i, tender in enumerate(tenders):
        if tender.method != KIND:
            continue
        if type(tender.amount_minor) is not int or tender.amount_minor <= 0:
            raise InputError("a gift card pays a positive amount; a payout is "
                             "paid in cash", field="payment")
        code = normalize_code(tender.ref, "payment.ref")
        digest = code_hash(code)
        asked[digest] = asked.get(digest, 0) + tender.amount_minor
        last4[digest] = code[-4:]
        tenders[i] = Tender(KIND, tender.amount_minor, masked(code[-4:]))
    plan = GiftCardPlan(replace(request, tenders=tuple(tenders)) if asked
                        else request)
    for digest, amount in asked.items():
        balance = _spendable(tx, digest, last4[digest], currency)
        if amount > balance:
            raise ConflictError(
                f"gift card {masked(last4[digest])} has {currency.format(balance)} "
                f"{currency.code} left; {currency.format(amount)} was asked")
        plan.redeemed.append({"hash": digest, "last4": last4[digest],
                              "amount_minor": amount})
    return plan


def _spendable(tx: Tx, digest: str, last4: str, currency: Currency) -> int:
    """Return a card's balance, or raise if it is unknown, voided or foreign."""
    row = tx.execute("SELECT balance_minor, status, currency FROM gift_cards"
                     " WHERE code_hash = ?", (digest,)).fetchone()
    if row is None:
        raise InputError(f"no gift card {masked(last4)}: check the code",
                         field="payment.ref")
    if row[1] != "active":
        raise ConflictError(f"gift card {masked(last4)} is {row[1]}")
    if row[2] != currency.code:
        raise ConflictError(f"gift card {masked(last4)} is in {row[2]}")
    return int(row[0])


def refuse_in_card_sale(request: Any, products: Mapping[str, Product]) -> None:
    """Refuse selling gift cards in a card sale: codes are issued with cash only.

    Spending one there is fine (``reserve``/``release``); issuing would need
    the codes drawn at approval, in another transaction, which is not built.
    """
    if any(products[sku].gift_card for sku, _ in request.lines if sku in products):
        raise InputError("gift cards are sold for cash (or voucher) only for now",
                         field="lines")


def issue_cards(plan: GiftCardPlan, priced: PricedSale,
                lines: Sequence[tuple[str, int]],
                products: Mapping[str, Product]) -> None:
    """Draw a code for each gift card unit sold, worth the unit's price."""
    count = sum(qty for sku, qty in lines if products[sku].gift_card)
    if count > MAX_CARDS_PER_SALE:
        raise InputError(f"a sale issues at most {MAX_CARDS_PER_SALE} gift cards",
                         field="lines")
    for index, (sku, qty) in enumerate(lines):
        if not products[sku].gift_card:
            continue
        line = priced.sale.lines[index]
        value = line.line.unit_minor
        if value <= 0:
            raise InputError(f"gift card {sku!r} has no value", field="lines")
        if line.paid_minor != value * qty:  # checkout never discounts a card
            raise InputError(f"gift card {sku!r} is sold at its face value only",
                             field=f"lines[{index}]")
        for _ in range(qty):
            code = new_code()
            plan.issued.append({"line": index, "hash": code_hash(code),
                                "last4": code[-4:], "amount_minor": value})
            plan.codes.append({"code": shown(code), "amount_minor": value})


def apply_sale(tx: Tx, plan: GiftCardPlan, data: Mapping[str, Any], seq: int
               ) -> None:
    """Write the sale's cards and balances, and the codes its receipt prints."""
    for card in plan.issued:
        tx.execute(
            "INSERT INTO gift_cards (code_hash, last4, currency, issued_minor,"
            " balance_minor, status, sale_id, seq, updated_seq)"
            " VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)",
            (card["hash"], card["last4"], data["currency"], card["amount_minor"],
             card["amount_minor"], data["id"], seq, seq))
    for card in plan.redeemed:
        _move(tx, card["hash"], -card["amount_minor"], seq)
    if plan.codes:
        money = Currency.of(data["currency"])
        notes = [f"Gift card {c['code']}: {money.format(c['amount_minor'])} "
                 f"{money.code}" for c in plan.codes]
        tx.execute("INSERT INTO gift_card_codes (sale_id, notes) VALUES (?, ?)",
                   (data["id"], json.dumps(notes)))


def reserve(tx: Tx, plan: GiftCardPlan, seq: int) -> None:
    """Take a pending card sale's gift card part off the balances, at its seq."""
    if plan.issued:  # refuse_in_card_sale keeps these out; never reserve them
        raise InputError("gift cards are sold for cash (or voucher) only for now",
                         field="lines")
    for card in plan.redeemed:
        _move(tx, card["hash"], -card["amount_minor"], seq)


def released(pending: Mapping[str, Any]) -> dict[str, Any]:
    """Return the part a ``sale.cancelled`` gives back of what its pending took."""
    redeemed = (pending.get("gift_cards") or {}).get("redeemed") or []
    if not redeemed:
        return {}
    return {"gift_cards": {"released": [
        {"hash": c["hash"], "last4": c["last4"], "amount_minor": c["amount_minor"]}
        for c in redeemed]}}


def release(tx: Tx, part: Mapping[str, Any], seq: int) -> None:
    """Put a cancelled card sale's reserved amounts back on their cards."""
    for card in (part.get("gift_cards") or {}).get("released", ()):
        _move(tx, card["hash"], card["amount_minor"], seq)


def receipt_notes(conn: Any, sale_id: str, *, codes: bool = False) -> list[str]:
    """Return the lines a sale's receipt shows for the cards it issued.

    Masked (``****-****-****-N6SN``) unless ``codes``: only the printer's
    original receipt (or the automatic reprint of one a crash cut off) asks
    for the plain codes, and gets them while ``gift_card_codes`` still has
    them (``forget_codes`` drops them once that print is done).
    """
    if codes:
        row = conn.execute("SELECT notes FROM gift_card_codes WHERE sale_id = ?",
                           (sale_id,)).fetchone()
        if row:
            return list(json.loads(row[0]))
    rows = conn.execute("SELECT last4, issued_minor, currency FROM gift_cards"
                        " WHERE sale_id = ? ORDER BY rowid", (sale_id,)).fetchall()
    out = []
    for last4, amount, code in rows:
        money = Currency.of(code)
        out.append(f"Gift card {masked(last4)}: {money.format(amount)} {money.code}")
    return out


def forget_codes(tx: Tx, sale_id: str) -> None:
    """Drop a sale's plain codes: its original receipt is on paper now."""
    tx.execute("DELETE FROM gift_card_codes WHERE sale_id = ?", (sale_id,))


def sale_answer(plan: GiftCardPlan) -> dict[str, Any]:
    """Return what the sale's 201 answer adds: the issued codes, once."""
    return {"gift_cards": plan.codes} if plan.codes else {}


def _move(tx: Tx, digest: str, delta: int, seq: int) -> None:
    """Change a card's balance; never below zero nor above what it was issued."""
    cursor = tx.execute(
        "UPDATE gift_cards SET balance_minor = balance_minor + ?, updated_seq = ?"
        " WHERE code_hash = ? AND status = 'active'"
        " AND balance_minor + ? BETWEEN 0 AND issued_minor",
        (delta, seq, digest, delta))
    if cursor.rowcount != 1:
        raise ConflictError("a gift card balance changed under this sale; retry")


def refund_part(tx: Tx, sale: Mapping[str, Any], body: Mapping[str, Any]
                ) -> dict[str, Any]:
    """Return what a refund does to gift cards: put back spent, void sold ones.

    A refund's gift card tender goes back to the sale's cards in the order
    they were spent, each up to what it gave minus what earlier refunds put
    back. A refunded gift card unit voids one of the cards its line issued
    that is still worth its full value; if none is, the refund is refused.
    """
    cards = sale.get("gift_cards") or {}
    back = sum(t["amount_minor"] for t in body.get("tenders", ())
               if t["method"] == KIND)
    restored = _restore(tx, cards.get("redeemed", ()), sale["id"], back)
    voided = _void(tx, cards.get("issued", ()), body.get("lines", ()))
    if not restored and not voided:
        return {}
    return {"gift_cards": {"restored": restored, "voided": voided}}


def _restore(tx: Tx, redeemed: Sequence[Mapping[str, Any]], sale_id: str,
             amount: int) -> list[dict[str, Any]]:
    """Split an amount paid back over the cards a sale spent."""
    given_back = _given_back(tx, sale_id)
    out = []
    for card in redeemed:
        room = card["amount_minor"] - given_back.get(card["hash"], 0)
        take = min(room, amount)
        if take > 0:
            out.append({"hash": card["hash"], "last4": card["last4"],
                        "amount_minor": take})
            amount -= take
    if amount > 0:
        raise ConflictError("this refund pays more back to gift cards than the "
                            "sale took from them")
    return out


def _given_back(tx: Tx, sale_id: str) -> dict[str, int]:
    """Return what earlier refunds of a sale put back per card."""
    out: dict[str, int] = {}
    rows = tx.execute("SELECT code_hash, amount_minor FROM gift_card_returns"
                      " WHERE sale_id = ?", (sale_id,))
    for digest, amount in rows:
        out[digest] = out.get(digest, 0) + amount
    return out


def _void(tx: Tx, issued: Sequence[Mapping[str, Any]],
          lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pick an unspent card of each refunded gift card unit to void."""
    out = []
    for line in lines:
        candidates = [c for c in issued if c["line"] == line["line"]]
        if not candidates:
            continue
        for _ in range(line["qty"]):
            card = _unspent(tx, candidates, {c["hash"] for c in out})
            out.append({"hash": card["hash"], "last4": card["last4"],
                        "amount_minor": card["amount_minor"]})
    return out


def _unspent(tx: Tx, candidates: Sequence[Mapping[str, Any]],
             taken: set[str]) -> Mapping[str, Any]:
    """Return the first card of a line still worth what it was issued for."""
    for card in candidates:
        if card["hash"] in taken:
            continue
        row = tx.execute("SELECT balance_minor = issued_minor AND status = 'active'"
                         " FROM gift_cards WHERE code_hash = ?",
                         (card["hash"],)).fetchone()
        if row and row[0]:
            return card
    last = ", ".join(masked(c["last4"]) for c in candidates)
    raise ConflictError(f"gift card(s) {last} were spent from or voided: a gift "
                        "card is refunded only while it is worth its full value")


def apply_refund(tx: Tx, part: Mapping[str, Any], sale_id: str,
                 refund_id: str, seq: int) -> None:
    """Write what a journaled refund did to gift card balances."""
    cards = part.get("gift_cards") or {}
    for card in cards.get("restored", ()):
        _move(tx, card["hash"], card["amount_minor"], seq)
        tx.execute("INSERT INTO gift_card_returns (code_hash, sale_id, refund_id,"
                   " amount_minor, seq) VALUES (?, ?, ?, ?, ?)",
                   (card["hash"], sale_id, refund_id, card["amount_minor"], seq))
    for card in cards.get("voided", ()):
        tx.execute("UPDATE gift_cards SET status = 'voided', balance_minor = 0,"
                   " updated_seq = ? WHERE code_hash = ?", (seq, card["hash"]))


def balance(conn: Any, code_text: object) -> dict[str, Any]:
    """Return one card's balance by its code (masked in the answer)."""
    code = normalize_code(code_text)
    row = conn.execute("SELECT last4, currency, issued_minor, balance_minor, status"
                       " FROM gift_cards WHERE code_hash = ?",
                       (code_hash(code),)).fetchone()
    if row is None:
        raise NotFoundError(f"no gift card {masked(code[-4:])}: check the code")
    return {"card": masked(row[0]), "currency": row[1], "issued_minor": row[2],
            "balance_minor": row[3], "status": row[4]}


def liability(conn: Any) -> dict[str, int]:
    """Return what active cards are still worth: the stall owes it in goods."""
    row = conn.execute("SELECT count(*), coalesce(sum(balance_minor), 0)"
                       " FROM gift_cards WHERE status = 'active'"
                       " AND balance_minor > 0").fetchone()
    return {"cards": int(row[0]), "outstanding_minor": int(row[1])}


def list_cards(conn: Any, limit: int = 200) -> list[dict[str, Any]]:
    """Return cards, newest first, masked, with what is left on each."""
    rows = conn.execute("SELECT last4, currency, issued_minor, balance_minor, status,"
                        " sale_id, seq, updated_seq FROM gift_cards"
                        " ORDER BY seq DESC LIMIT ?", (limit,))
    return [{"card": masked(r[0]), "currency": r[1], "issued_minor": r[2],
             "balance_minor": r[3], "status": r[4], "sale_id": r[5],
             "issued_seq": r[6], "updated_seq": r[7]} for r in rows]


class GiftCardsReplay:
    """gift_cards and gift_card_returns rebuilt from sale and refund events."""

    kinds = frozenset({"sale.completed", "sale.refunded", "sale.pending",
                       "sale.cancelled"})
    parsers: dict[str, Any] = {}

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cards: dict[str, list[Any]] = {}
        self.returns: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.reserved: set[str] = set()  # pending card sales that took balance

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any],
             digest: bytes) -> Fault | None:
        data = record["data"]
        part = data.get("gift_cards")
        if not part:
            return None
        try:
            if kind == "sale.completed":
                self._sale(seq, data, part, data["id"] in self.reserved)
                self.reserved.discard(data["id"])
            elif kind == "sale.pending":
                self._sale(seq, data, part, False)
                if part.get("redeemed"):
                    self.reserved.add(data["id"])
            elif kind == "sale.cancelled":
                for card in part["released"]:
                    self._add(card["hash"], card["amount_minor"], seq)
                self.reserved.discard(data["sale_id"])
            else:
                self._refund(seq, data, part)
        except (KeyError, TypeError, ValueError):
            return seq, "gift_cards part of the event is malformed"
        return None

    def _sale(self, seq: int, data: dict[str, Any], part: dict[str, Any],
              reserved: bool) -> None:
        for card in part.get("issued", ()):
            self.cards[card["hash"]] = [card["hash"], card["last4"], data["currency"],
                                        card["amount_minor"], card["amount_minor"],
                                        "active", data["id"], seq, seq]
        if reserved:  # its sale.pending took it off already
            return
        for card in part.get("redeemed", ()):
            self._add(card["hash"], -card["amount_minor"], seq)

    def _refund(self, seq: int, data: dict[str, Any], part: dict[str, Any]) -> None:
        for card in part.get("restored", ()):
            self._add(card["hash"], card["amount_minor"], seq)
            self.returns[(card["hash"], data["id"])] = (
                card["hash"], data["sale_id"], data["id"], card["amount_minor"], seq)
        for card in part.get("voided", ()):
            row = self.cards[card["hash"]]
            row[4], row[5], row[8] = 0, "voided", seq

    def _add(self, digest: str, delta: int, seq: int) -> None:
        row = self.cards[digest]
        row[4] += delta
        row[8] = seq

    def finish(self) -> Fault | None:
        if not has_table(self.conn, "gift_cards"):  # a journal older than gift cards
            return _older_journal_fault(self.cards)
        wanted = {k: tuple(v) for k, v in self.cards.items()}
        rows = self.conn.execute(
            "SELECT code_hash, last4, currency, issued_minor, balance_minor, status,"
            " sale_id, seq, updated_seq FROM gift_cards")
        for row in rows:
            found = wanted.pop(row[0], None)
            if found is None:
                return row[-1], f"gift_cards has a card (seq {row[7]}) no event issued"
            if tuple(row) != found:
                return found[8], "gift_cards row differs from its events"
        if wanted:
            return min(v[8] for v in wanted.values()), \
                "gift_cards lacks a card its events issued"
        return self._finish_returns()

    def _finish_returns(self) -> Fault | None:
        if not has_table(self.conn, "gift_card_returns"):
            return _older_journal_fault(self.returns)
        wanted = dict(self.returns)
        rows = self.conn.execute("SELECT code_hash, sale_id, refund_id, amount_minor,"
                                 " seq FROM gift_card_returns")
        for row in rows:
            if wanted.pop((row[0], row[2]), None) != tuple(row):
                return row[-1], "gift_card_returns row differs from its events"
        if wanted:
            return min(v[4] for v in wanted.values()), \
                "gift_card_returns lacks a row its events made"
        return None


def _older_journal_fault(made: Mapping[Any, Sequence[Any]]) -> Fault | None:
    """A journal without the table verifies when no event would have made rows."""
    if not made:
        return None
    return min(v[-1] for v in made.values()), "gift card events but no gift card table"
