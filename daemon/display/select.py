"""Slot selection: a pure function of (inventory, cohort, time bucket).

Sponsors buy a share of voice in basis points. Each bucket maps to a point
u in [0, 1) by a Weyl sequence (bucket times the golden-ratio constant,
modulo 2**32), offset per cohort; u falls in a sponsor's band with exactly
that sponsor's share, and an equidistributed sequence keeps the realised
share within a fraction of a percent over a day of buckets. A band whose
sponsor is out of flight, day-part, cohort or hourly cap goes to the house
pool, not to other sponsors, so nobody gets more than was bought. The house
pool is the live pins while any is valid, else house and product creatives,
else a welcome slot.
"""

from __future__ import annotations

import functools
import hashlib
import time

from daemon.display.model import BUCKET_S, Cohort, Creative, Inventory, Pin, Slot

WEYL = 2654435769  # round(2**32 * (sqrt(5) - 1) / 2): Knuth's multiplicative hash
SPACE = 1 << 32
FULL_BP = 10_000
WELCOME = Slot("welcome", "welcome")


@functools.lru_cache(maxsize=1024)
def cohort_offset(cohort: Cohort) -> int:
    """Return a stable 32-bit offset for a cohort (not Python's salted hash)."""
    digest = hashlib.sha256(cohort.key().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def point(cohort: Cohort, bucket: int) -> int:
    """Return the bucket's point in [0, 2**32) for this cohort."""
    return (bucket * WEYL + cohort_offset(cohort)) % SPACE


def local_hour(bucket: int) -> int:
    """Return the box's local hour at the start of a bucket."""
    return time.localtime(bucket * BUCKET_S).tm_hour


def eligible(creative: Creative, cohort: Cohort, bucket: int,
             inventory: Inventory) -> bool:
    """Return True if the creative may show to this cohort in this bucket."""
    when = bucket * BUCKET_S
    if creative.start_s and when < creative.start_s:
        return False
    if creative.end_s and when >= creative.end_s:
        return False
    start, end = creative.hours
    if not start <= local_hour(bucket) < end:
        return False
    if creative.id in inventory.capped:
        return False
    if creative.sku and creative.sku not in inventory.catalog:
        return False
    return _targets(creative, cohort)


def _targets(creative: Creative, cohort: Cohort) -> bool:
    return ((not creative.sizes or cohort.size in creative.sizes)
            and (not creative.langs or cohort.lang in creative.langs)
            and (not creative.zones or cohort.zone in creative.zones))


def select_slot(inventory: Inventory, cohort: Cohort, bucket: int) -> Slot:
    """Return the slot for a cohort in a bucket; same inputs, same slot."""
    u = point(cohort, bucket)
    low = 0
    for creative in sponsors(inventory):
        high = min(SPACE, low + creative.share_bp * SPACE // FULL_BP)
        if low <= u < high:
            if eligible(creative, cohort, bucket, inventory):
                return Slot("c:" + creative.id, "sponsor", creative)
            break
        low = high
    return house_slot(inventory, cohort, bucket)


def sponsors(inventory: Inventory) -> list[Creative]:
    """Return the sponsor creatives in their fixed band order."""
    return sorted((c for c in inventory.creatives
                   if c.kind == "sponsor" and c.share_bp > 0), key=lambda c: c.id)


def house_slot(inventory: Inventory, cohort: Cohort, bucket: int) -> Slot:
    """Return the house pool's slot: a live pin, a house or product creative."""
    if inventory.pins:
        pin: Pin = inventory.pins[bucket % len(inventory.pins)]
        return Slot("pin:" + pin.sku, "pin", pin=pin)
    pool = [c for c in inventory.creatives if c.kind in ("house", "product")
            and eligible(c, cohort, bucket, inventory)]
    if not pool:
        return WELCOME
    pool.sort(key=lambda c: c.id)
    creative = pool[bucket % len(pool)]
    return Slot("c:" + creative.id, creative.kind, creative)
