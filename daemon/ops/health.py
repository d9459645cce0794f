"""The /healthz document and the /metrics exposition, built from the running app."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from daemon.ops import metrics
from daemon.ops.clock import CLOCK
from daemon.ops.disk import DiskGuard
from daemon.runtime import Stallbox
from daemon.web.keys import STALLBOX

# Device states a person fixes by plugging something in: shown as waiting.
WAITING_STATES = frozenset({"absent", "unreachable"})


def terminal_entry(app: web.Application) -> dict[str, Any] | None:
    """Return the card terminal's status, or None when none is configured."""
    try:
        from daemon.web.api_payments import TERMINAL
    except ImportError:  # a build without card payments (#3)
        return None
    slot = app.get(TERMINAL)
    service = slot.service if slot is not None else None
    return _waiting(service.status()) if service is not None else None


def _waiting(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("state") in WAITING_STATES:
        entry = {**entry, "waiting": "waiting for device"}
    return entry


def document(app: web.Application, guard: DiskGuard) -> dict[str, Any]:
    """Return the health document: every part, and ok only when selling works."""
    box = app[STALLBOX]
    doc = box.healthz()
    doc["printer"] = _waiting(doc["printer"])
    doc["journal"] = {"state": doc["journal_integrity"], "seq": doc["journal_seq"],
                      "wal_bytes": box.journal.wal_bytes()}
    terminal = terminal_entry(app)
    if terminal is not None:
        doc["terminal"] = terminal
    doc["clock"] = CLOCK.state_dict()
    doc["disk"] = guard.state_dict()
    if guard.low:
        doc["status"] = "degraded"
    return doc


def _counts(conn: sqlite3.Connection) -> tuple[int, int]:
    sales = conn.execute("SELECT MAX(rowid) FROM sales").fetchone()[0] or 0
    queued = conn.execute("SELECT COUNT(*) FROM print_jobs"
                          " WHERE status IN ('queued', 'printing')").fetchone()[0]
    return sales, queued


async def exposition(app: web.Application, guard: DiskGuard,
                     registry: metrics.Registry) -> str:
    """Return /metrics in the Prometheus text format."""
    box = app[STALLBOX]
    doc = document(app, guard)
    sales, queued = await box.reader.run(_counts)
    if box.printer is not None:  # printed, print.done not journaled yet (#7)
        queued = max(0, queued - box.printer.unjournaled_printed())
    lines = [
        *metrics.gauge("stallbox_up", int(doc["status"] == "ok"),
                       "1 while sales are accepted."),
        *metrics.gauge("stallbox_sales_total", sales, "Sales in the journal.",
                       "counter"),
        *metrics.gauge("stallbox_journal_seq", doc["journal_seq"],
                       "Sequence number of the journal head."),
        *metrics.gauge("stallbox_journal_wal_bytes", doc["journal"]["wal_bytes"],
                       "Size of the journal's write-ahead log."),
        *metrics.gauge("stallbox_print_queue_jobs", queued,
                       "Print jobs queued or on the wire."),
        *_state_gauge("stallbox_printer_state", doc["printer"]["state"]),
        *_state_gauge("stallbox_terminal_state",
                      doc.get("terminal", {}).get("state")),
        *_sync_lines(doc["sync"]),
        *metrics.gauge("stallbox_clock_synced", _bool(doc["clock"]["state"]),
                       "1 when the clock is NTP-synchronised or corrected."),
        *metrics.gauge("stallbox_disk_free_bytes", doc["disk"]["free_bytes"],
                       "Free bytes on the state dir's filesystem."),
        *metrics.histogram_lines(registry),
    ]
    return "\n".join(lines) + "\n"


def _bool(clock_state: str) -> int:
    return int(clock_state in ("synced", "corrected"))


def _state_gauge(name: str, state: str | None) -> list[str]:
    if state is None:
        return []
    return metrics.gauge(name, 1, "The device's current state, as a label.",
                         labels=f'state="{state}"')


def _sync_lines(sync: dict[str, Any]) -> list[str]:
    lines = metrics.gauge("stallbox_sync_backlog_events", sync.get("backlog"),
                          "Journal events not yet acknowledged by the cloud.")
    last = sync.get("last_success")
    if last:
        age = datetime.now(UTC) - datetime.fromisoformat(str(last).replace(
            "Z", "+00:00"))
        lines += metrics.gauge("stallbox_sync_lag_seconds",
                               round(age.total_seconds(), 1),
                               "Seconds since the last successful sync.")
    return lines


def box_of(app: web.Application) -> Stallbox:
    """Return the app's Stallbox."""
    return app[STALLBOX]
