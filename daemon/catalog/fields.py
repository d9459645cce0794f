"""Cell values shared by every format: prices, weights, flags, names."""

from __future__ import annotations

import html
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from daemon.catalog.errors import RowError
from daemon.errors import InputError
from daemon.money import Currency

# Exact definitions: the international avoirdupois pound (1959) is 453.59237 g.
GRAMS_PER_UNIT: dict[str, Decimal] = {
    "g": Decimal(1), "kg": Decimal(1000), "lb": Decimal("453.59237"),
    "lbs": Decimal("453.59237"), "oz": Decimal("28.349523125"),
}
_MAX_WEIGHT_G = 10**6  # a tonne, in any unit, is no stall item
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Bidi embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI
# PDI). They reorder the text after them, so "Kerze \u202egnp.exe" shows as
# "Kerze exe.png" on a till button or in the catalog; no product name needs
# them (Arabic and Hebrew render right-to-left by themselves), and a name the
# owner sees must read as it is stored. LRM/RLM (U+200E/F) reorder nothing
# and stay.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
# A product name or variant longer than this wraps a receipt over many lines
# and breaks the till's button grid; no real product needs more.
MAX_NAME_CHARS = 120
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0", ""})


def price_minor(text: str, currency: Currency) -> int:
    """Parse a price cell into minor units; refuse missing, negative, garbled."""
    text = text.strip()
    if not text:
        raise RowError("missing price")
    text = _strip_currency(text, currency)
    try:
        value = currency.parse(text)
    except InputError as err:
        raise RowError(f"unparsable price {text[:40]!r}: {err.detail}") from err
    if value < 0:
        raise RowError(f"negative price {text[:40]!r}")
    return value


def _strip_currency(text: str, currency: Currency) -> str:
    """Drop a leading or trailing symbol or code of the stall's own currency."""
    for mark in (currency.symbol, currency.code):
        if text.startswith(mark):
            return text[len(mark):].strip()
        if text.endswith(mark):
            return text[: -len(mark)].strip()
    return text


def weight_g(text: str, unit: str = "g") -> int | None:
    """Convert a weight in unit to whole grams (half up); empty or 0 is None."""
    text = text.strip().replace(",", ".")
    if not text:
        return None
    factor = GRAMS_PER_UNIT.get(unit.strip().casefold())
    if factor is None:
        raise RowError(f"unknown weight unit {unit[:20]!r}")
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise RowError(f"unparsable weight {text[:40]!r}") from err
    # Range first: arithmetic on 1e999999 would overflow the decimal context.
    if not value.is_finite() or not 0 <= value <= _MAX_WEIGHT_G:
        raise RowError(f"weight out of range {text[:40]!r}")
    grams = int((value * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return grams or None


def flag(text: str, column: str) -> bool:
    """Parse TRUE/true/Y/yes/1 and their opposites; empty is False."""
    folded = text.strip().casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise RowError(f"{column}: expected true or false, got {text[:20]!r}")


def clean_text(text: str) -> str:
    """Unescape HTML entities, fold line breaks and tabs, refuse control codes.

    Text stays data otherwise: `<script>`, quotes and `=` formulas are kept
    as written, because escaping is the job of each page, receipt and export.
    C0/C1 control codes are refused since a receipt printer would obey them
    (ESC, GS) instead of printing them. Bidi embedding, override and isolate
    characters are dropped (see _BIDI_CONTROL): they make a name display as
    something other than what it is.
    """
    if "&" in text:
        text = html.unescape(text)
    text = " ".join(_BIDI_CONTROL.sub("", text).split())
    control = _CONTROL.search(text)
    if control:
        raise RowError(f"text contains control code U+{ord(control[0]):04X}")
    return text


def name(text: str) -> str:
    """Return a cleaned product name or refuse an empty one."""
    cleaned = clean_text(text)
    if not cleaned:
        raise RowError("missing name")
    return cleaned


def leaf_category(path: str, separator: str = ">") -> str:
    """Return the last step of a category path like 'Food > Cakes'."""
    return clean_text(path.rsplit(separator, 1)[-1])
