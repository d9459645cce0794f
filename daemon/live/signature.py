"""Webhook signatures: ``Stallbox-Signature: t=<unix s>,v1=<hex HMAC-SHA256>``.

The MAC covers ``"<t>.<raw body>"`` so a captured body cannot be replayed with a
fresh time; the window bounds how long a captured (t, body) pair stays usable,
and idempotency by event id makes a replay inside the window harmless.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from daemon.live.errors import SignatureRejected

HEADER = "Stallbox-Signature"
WINDOW_S = 300
MAX_HEADER = 512


def sign(secret: str, t: int, body: bytes) -> str:
    """Return the header value for body sent at unix time t."""
    return f"t={t},v1={mac(secret, t, body)}"


def mac(secret: str, t: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of "<t>.<body>" under secret."""
    message = str(t).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def parse_header(value: str) -> tuple[int, list[str]]:
    """Return (t, [v1 signatures]) from a header value."""
    if not value or len(value) > MAX_HEADER:
        raise SignatureRejected("missing or oversized Stallbox-Signature header")
    t_text, macs = "", []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t":
            t_text = item
        elif key == "v1":
            macs.append(item.lower())
    if not (t_text.isascii() and t_text.isdigit() and len(t_text) <= 12) or not macs:
        raise SignatureRejected("Stallbox-Signature needs t=<unix seconds>,v1=<hex>")
    return int(t_text), macs


def verify(value: str, body: bytes, secrets: Iterable[tuple[str, str]],
           now_s: float) -> tuple[str, int]:
    """Return (integration name, t) whose secret signed body; else raise."""
    t, macs = parse_header(value)
    if abs(now_s - t) > WINDOW_S:
        raise SignatureRejected(f"signature time is more than {WINDOW_S} s away "
                                "from the stall's clock")
    for name, secret in secrets:
        expected = mac(secret, t, body)
        if any(hmac.compare_digest(expected, got) for got in macs):
            return name, t
    raise SignatureRejected("signature does not match any integration's secret")
