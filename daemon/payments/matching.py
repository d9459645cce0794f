"""Decide whether the terminal's last transaction settles an unknown intent.

Pure functions: the service asks the terminal, these read the answer. The
rules lean to "cannot tell": a person deciding from the slip is slow, a wrong
guess charges a customer twice or gives goods away.

- Only the newest attempt on a terminal can be settled this way; once a later
  attempt ran, the terminal's last transaction belongs to that one.
- The last transaction is ours when its receipt and trace numbers are on no
  settled intent, its amount is the intent's, and (when the terminal sends
  its clock) it was booked no earlier than the intent was made.
- It proves ours never booked when it is an earlier, already settled
  transaction booked before the intent was made.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from device.terminal.base import PaymentResult, PaymentStatus

logger = logging.getLogger(__name__)

CLOCK_SKEW_S = 120  # terminal and box clocks may disagree by this much


def booked_time(booked_at: str | None, near: datetime) -> datetime | None:
    """Return the terminal's "MMDDhhmmss" as a local time in the year of ``near``."""
    if booked_at is None or len(booked_at) != 10 or not booked_at.isdigit():
        return None
    try:
        moment = datetime.strptime(f"{near.year}{booked_at}", "%Y%m%d%H%M%S")
    except ValueError:
        return None
    moment = moment.replace(tzinfo=near.tzinfo)
    if moment - near > timedelta(days=180):  # booked in December, asked in January
        moment = moment.replace(year=near.year - 1)
    return moment


def _is_known(last: PaymentResult, booked: set[tuple[str, int]]) -> bool:
    numbers = [("receipt_no", last.receipt_no), ("trace", last.trace)]
    return any(n is not None and (key, n) in booked for key, n in numbers)


def decide(intent: dict[str, Any], last: PaymentResult,
           booked: set[tuple[str, int]]) -> str | None:
    """Return "approved" or "declined" if ``last`` settles the intent, else None."""
    if last.receipt_no is None and last.trace is None:
        return None  # the terminal has no record to show
    created = datetime.fromisoformat(intent["created_at"].replace("Z", "+00:00"))
    created = created.astimezone()
    when = booked_time(last.booked_at, created)
    skew = timedelta(seconds=CLOCK_SKEW_S)
    if _is_known(last, booked):
        if when is not None and when < created - skew:
            return "declined"  # the newest booking predates this attempt
        return None
    if last.amount_minor != intent["amount_minor"]:
        return None
    if when is not None and when < created - skew:
        return None
    if last.status is PaymentStatus.APPROVED:
        return "approved"
    if last.status in (PaymentStatus.DECLINED, PaymentStatus.ABORTED):
        return "declined"
    return None
