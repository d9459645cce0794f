"""Errors of live selling, grouped by what the sender does next."""

from __future__ import annotations

from daemon.errors import InputError, StallboxError


class LiveError(StallboxError):
    """Base of the errors raised by daemon.live."""


class SignatureRejected(LiveError):
    """Raised when a webhook's signature or time is wrong; the sender must fix it."""


class IntegrationExists(LiveError, InputError):
    """Raised when an integration of that name exists; pick another name."""

    def __init__(self, name: str) -> None:
        InputError.__init__(self, f"an integration named {name!r} exists already",
                            field="name")
