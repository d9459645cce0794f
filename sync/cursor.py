"""The acknowledgement cursor: journaled as ``sync.acked`` events, read from a model.

Why the cursor does not churn: a ``sync.acked`` event is itself journal data
and ships in the next batch, so acknowledging it would call for another
``sync.acked`` event, forever. The client therefore journals an acknowledgement
only when the acknowledged range holds at least one event other than its own
last ``sync.acked``; an idle stall sends that one event once and then stays
quiet. Acknowledgements are also journaled at most once per
``PERSIST_INTERVAL_S`` while a backlog drains (plus once when caught up), so a
100 000-event drain costs a handful of fsyncs, not one per batch: SD cards wear
by write count. Losing an unjournaled acknowledgement in a crash only resends
events the receiver already holds; it answers "already have it".

``sync_cursor`` is a read model of the latest ``sync.acked`` event (one row),
so start-up never scans the journal for it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from daemon.journal.store import Tx

ACK_KIND = "sync.acked"
PERSIST_INTERVAL_S = 30.0
CURSOR_DDL = (
    "CREATE TABLE IF NOT EXISTS sync_cursor ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " acked_seq INTEGER NOT NULL,"  # the receiver held every event up to here
    " event_seq INTEGER NOT NULL)"  # the sync.acked event that recorded it
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last journaled acknowledgement and the seq of its own event."""

    acked_seq: int = 0
    event_seq: int = 0


def ensure_table(tx: Tx) -> None:
    """Create the cursor read model if this journal has none yet."""
    tx.execute(CURSOR_DDL)


def load(conn: sqlite3.Connection) -> Cursor:
    """Read the cursor read model; a journal that never synced has seq 0."""
    try:
        row = conn.execute(
            "SELECT acked_seq, event_seq FROM sync_cursor WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # no table before the first start with sync
        return Cursor()
    return Cursor(*row) if row else Cursor()


def persist(tx: Tx, acked_seq: int) -> Cursor:
    """Journal an acknowledgement and update the read model in the same commit."""
    event = tx.append(ACK_KIND, {"acked_seq": acked_seq})
    tx.force_seal()  # the round ships it next: no seal commit of its own (#7)
    tx.execute(CURSOR_DDL)
    tx.execute("INSERT INTO sync_cursor (id, acked_seq, event_seq) VALUES (1, ?, ?)"
               " ON CONFLICT (id) DO UPDATE SET acked_seq = excluded.acked_seq,"
               " event_seq = excluded.event_seq", (acked_seq, event.seq))
    return Cursor(acked_seq, event.seq)


def real_events_acked(saved: Cursor, acked_seq: int) -> int:
    """Count acknowledged events past the saved cursor, not counting its own event."""
    if acked_seq <= saved.acked_seq:
        return 0
    own = 1 if saved.acked_seq < saved.event_seq <= acked_seq else 0
    return acked_seq - saved.acked_seq - own


def should_persist(saved: Cursor, acked_seq: int, *, caught_up: bool,
                   since_last_s: float, stopping: bool = False) -> bool:
    """Decide whether this acknowledgement is worth an event and an fsync."""
    if real_events_acked(saved, acked_seq) == 0:
        return False
    return caught_up or stopping or since_last_s >= PERSIST_INTERVAL_S
