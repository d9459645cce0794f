"""Stable SKUs for products that arrive without a usable one."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SLUG_MAX = 40
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def derive_sku(key: str, *options: str) -> str:
    """Return the SKU Stallbox gives a product identified by key and options.

    `key` is what identifies the product in its shop (a Shopify handle, a
    Square item name, our own CSV's name) and `options` its variant values
    in order (e.g. "Vanille", "200 g"). The SKU is an ASCII slug of them, at
    most 40 characters, a hyphen and 8 hex digits of SHA-256 over the values
    after NFC, case folding and whitespace collapsing: the same product gets
    the same SKU on every import and machine, letter case and spacing edits
    do not move it, and two variants whose slugs agree still differ by the
    digest. Example: derive_sku("gift-card", "50") == "gift-card-50-<8 hex>".
    Changing this function changes every derived SKU: re-imports would then
    create new products instead of updating the old ones.
    """
    parts = [_normalise(part) for part in (key, *options)]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8]
    slug = _slug("-".join(part for part in parts if part)) or "item"
    return f"{slug}-{digest}"


def _normalise(text: str) -> str:
    """NFC, case-folded, with runs of whitespace as one space."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _slug(text: str) -> str:
    """ASCII letters and digits joined by single hyphens, cut at a word edge."""
    folded = unicodedata.normalize("NFKD", text)
    ascii_text = folded.encode("ascii", "ignore").decode().lower()
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    if len(slug) > _SLUG_MAX:
        slug = slug[:_SLUG_MAX].rsplit("-", 1)[0] or slug[:_SLUG_MAX]
    return slug.strip("-")
