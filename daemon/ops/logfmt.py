"""One log line per event, as logfmt key=value pairs, for the systemd journal.

Fields passed with ``extra={"fields": {...}}`` are added as pairs. Messages
never carry card data, tokens or e-mail: callers log ids and sequence numbers.
"""

from __future__ import annotations

import logging
import os
import sys

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   "-_./:@+")


def _value(raw: object) -> str:
    text = str(raw)
    if text and all(c in _PLAIN for c in text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """Format a record as one line: [ts=] level= logger= msg= and extra fields."""

    def __init__(self, *, with_time: bool) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = []
        if self.with_time:
            pairs.append(("ts", self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z")))
        pairs += [("level", record.levelname.lower()), ("logger", record.name),
                  ("msg", record.getMessage())]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            pairs += sorted(fields.items())
        if record.exc_info:
            pairs.append(("exc", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_value(value)}" for key, value in pairs)


def setup(level: int) -> None:
    """Send every record to stderr as logfmt; journald adds its own time stamp."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(with_time="JOURNAL_STREAM" not in os.environ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
