"""The signed receipt excerpt printed as a QR code, and its checks.

Text, fields split by '|':

    SB1|stall id|sale seq|event ts (UTC)|currency|total_minor|
    code:rate_bp:gross_minor:tax_minor,...|event hash prefix|epoch|signature

The signature (Ed25519 by the epoch key live at the sale, URL-safe base64)
covers every byte before it, including the last '|'. The hash prefix ties the
receipt to one event of the chain: 16 hex digits, the first 64 bits of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daemon.errors import InputError
from daemon.keys.device import verify_signature
from daemon.keys.epoch import b64, unb64

if TYPE_CHECKING:
    from daemon.journal.store import Event, Tx

PREFIX = "SB1"
SEP = "|"
HASH_PREFIX_HEX = 16
MAX_TEXT = 600
_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
_TAX = re.compile(r"^[A-Z0-9]{1,3}:\d{1,5}:-?\d{1,12}:-?\d{1,12}$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ExcerptError(InputError):
    """Raised when receipt text is not a Stallbox excerpt; the person re-scans."""


@dataclass(frozen=True, slots=True)
class Excerpt:
    """The fields of one receipt excerpt."""

    stall_id: str
    seq: int
    ts: str
    currency: str
    total_minor: int
    taxes: tuple[tuple[str, int, int, int], ...]
    hash_prefix: str
    epoch: int
    signature: bytes = b""

    def signed_text(self) -> str:
        """Return the text the signature covers (ends with the separator)."""
        taxes = ",".join(f"{c}:{r}:{g}:{t}" for c, r, g, t in self.taxes)
        return _signed_text(self.stall_id, self.seq, self.ts, self.currency,
                            self.total_minor, taxes, self.hash_prefix, self.epoch)

    def text(self) -> str:
        """Return the full excerpt, signature included."""
        return self.signed_text() + b64(self.signature)


@dataclass(frozen=True, slots=True)
class ExcerptCheck:
    """The verdict on one receipt text."""

    genuine: bool
    reason: str
    excerpt: Excerpt | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the verdict as the JSON APIs and the check pages show it."""
        excerpt = self.excerpt
        sale = None if excerpt is None else {
            "stall_id": excerpt.stall_id, "seq": excerpt.seq, "ts": excerpt.ts,
            "currency": excerpt.currency, "total_minor": excerpt.total_minor,
            "epoch": excerpt.epoch}
        return {"genuine": self.genuine, "reason": self.reason, "sale": sale}


def excerpt_for_sale(stall_id: str, seq: int, ts: str, data: dict[str, Any],
                     digest: bytes, epoch: int) -> Excerpt:
    """Build the unsigned excerpt of a sale.completed event."""
    taxes = tuple((t["code"], t["rate_bp"], t["gross_minor"], t["tax_minor"])
                  for t in data["taxes"])
    return Excerpt(stall_id, seq, ts, data["currency"], data["total_minor"], taxes,
                   digest.hex()[:HASH_PREFIX_HEX], epoch)


def sale_signed_text(stall_id: str, seq: int, ts: str, data: dict[str, Any],
                     digest: bytes, epoch: int) -> str:
    """Return ``excerpt_for_sale(...).signed_text()`` without the Excerpt between.

    The verifier builds one per sale of the journal.
    """
    taxes = ",".join(f"{t['code']}:{t['rate_bp']}:{t['gross_minor']}:{t['tax_minor']}"
                     for t in data["taxes"])
    return _signed_text(stall_id, seq, ts, data["currency"], data["total_minor"],
                        taxes, digest[:HASH_PREFIX_HEX // 2].hex(), epoch)


def _signed_text(stall_id: str, seq: int, ts: str, currency: str, total_minor: int,
                 taxes: str, hash_prefix: str, epoch: int) -> str:
    """The text an excerpt's signature covers, its fields in their order."""
    return SEP.join((PREFIX, stall_id, str(seq), ts, currency, str(total_minor),
                     taxes, hash_prefix, str(epoch))) + SEP


def sale_excerpt(tx: Tx, stall_id: str, event: Event) -> str:
    """Return the signed excerpt of a sale just appended ('' when unsigned)."""
    signer = tx.signer
    if signer is None or signer.active is None:
        return ""
    epoch = signer.active.epoch
    # The text straight from the event: an Excerpt (nine frozen fields, about
    # as much work as the text) is only needed to parse or check a receipt.
    signed = sale_signed_text(stall_id, event.seq, event.ts, event.data, event.hash,
                              epoch)
    return _signed(signed, epoch, signer.sign)


def sign_excerpt(excerpt: Excerpt, sign: Callable[[bytes], tuple[int, bytes]]) -> str:
    """Sign the excerpt with the live epoch key and return its text."""
    return _signed(excerpt.signed_text(), excerpt.epoch, sign)


def _signed(signed: str, epoch: int, sign: Callable[[bytes], tuple[int, bytes]]
            ) -> str:
    """Sign an excerpt's text with the key of epoch; return it with the signature."""
    key_epoch, signature = sign(signed.encode("utf-8"))
    if key_epoch != epoch:
        raise ValueError("the epoch key changed while signing")
    return signed + b64(signature)  # what Excerpt.text() gives, built once


def parse_excerpt(text: str) -> Excerpt:
    """Parse receipt text; raise ExcerptError naming what is wrong."""
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ExcerptError("receipt text is too long", field="receipt")
    parts = text.split(SEP)
    if len(parts) != 10 or parts[0] != PREFIX:
        raise ExcerptError("not a Stallbox receipt code (SB1|…)", field="receipt")
    try:
        return _parse_parts(parts)
    except (ValueError, IndexError) as err:
        raise ExcerptError(f"receipt code is malformed: {err}",
                           field="receipt") from err


def _parse_parts(parts: list[str]) -> Excerpt:
    _, stall, seq, ts, currency, total, taxes, prefix, epoch, sig = parts
    if not _ID.match(stall) or not _TS.match(ts) or not re.fullmatch("[A-Z]{3}",
                                                                    currency):
        raise ValueError("stall id, time or currency")
    if not re.fullmatch(f"[0-9a-f]{{{HASH_PREFIX_HEX}}}", prefix):
        raise ValueError("hash prefix")
    rows = [t.split(":") for t in taxes.split(",")] if taxes else []
    if any(not _TAX.match(t) for t in taxes.split(",") if taxes):
        raise ValueError("tax rows")
    signature = unb64(sig)
    if len(signature) != 64:
        raise ValueError("signature length")
    return Excerpt(stall, _natural(seq), ts, currency, int(total),
                   tuple((c, int(r), int(g), int(t)) for c, r, g, t in rows),
                   prefix, _natural(epoch), signature)


def _natural(text: str) -> int:
    if not text.isdigit() or len(text) > 15:
        raise ValueError(f"not a positive number: {text[:20]!r}")
    return int(text)


def check_signature(excerpt: Excerpt, epoch_public: bytes | None) -> ExcerptCheck:
    """Check the excerpt's signature against its epoch's certified public key."""
    if epoch_public is None:
        return ExcerptCheck(False, f"epoch {excerpt.epoch} is not certified in "
                            "this stall's journal", excerpt)
    message = excerpt.signed_text().encode("utf-8")
    if not verify_signature(epoch_public, excerpt.signature, message):
        return ExcerptCheck(False, "signature does not match: the receipt was "
                            "altered or not made by this stall", excerpt)
    return ExcerptCheck(True, "signature valid", excerpt)
