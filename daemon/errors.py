"""Exceptions of the daemon, grouped by what the caller does next."""


class StallboxError(Exception):
    """Base of every error the daemon raises on purpose."""


class InputError(StallboxError):
    """Raised when input from a person or client is wrong; ask them to fix it."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class ConflictError(StallboxError):
    """Raised when the request contradicts the journal's current state."""


class NotFoundError(StallboxError):
    """Raised when a named sale, product or job does not exist."""


class RetryLaterError(StallboxError):
    """Raised when a resource is busy or unavailable; the same call may work later."""


class RateLimitedError(RetryLaterError):
    """Raised when a client tried too often (wrong pairing codes); it must wait."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class FatalError(StallboxError):
    """Raised when the daemon cannot safely go on (bad pragmas, damaged journal)."""
