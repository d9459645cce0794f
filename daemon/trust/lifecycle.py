"""Keys while the daemon runs: load at start, seal idle tails, rotate by age."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from daemon.journal.store import SEAL_INTERVAL_S, Journal
from daemon.keys.device import DeviceIdentity
from daemon.keys.signer import Certified, JournalSigner

_LOG = logging.getLogger(__name__)
KEY_TICK_S = 1.0


def last_certified(conn: sqlite3.Connection) -> Certified | None:
    """Return the newest certified epoch from the epochs read model."""
    row = conn.execute(
        "SELECT epoch, public_key FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
    return Certified(row[0], bytes(row[1])) if row else None


def _prepare(state_dir: Path, stall_id: str,
             certified: Certified | None) -> JournalSigner:
    device = DeviceIdentity.load_or_create(state_dir)
    signer = JournalSigner(state_dir, device, stall_id)
    signer.adopt(certified)
    return signer


async def open_signer(journal: Journal, state_dir: Path, stall_id: str,
                      certified: Certified | None) -> JournalSigner:
    """Attach a signer to the journal and start a new epoch for this run.

    Every start begins an epoch, certified by the previous epoch's key when it
    survived (else by the device key), so a restart never extends an epoch past
    ``epoch_max_s`` and a key left by a crash is erased.
    """
    signer = await asyncio.to_thread(_prepare, state_dir, stall_id, certified)
    journal.signer = signer
    event = await journal.rotate("start")
    _LOG.info("journal signing with epoch %d (certificate at seq %d)",
              signer.current.epoch if signer.current else 0, event.seq)
    return signer


async def key_timer(journal: Journal, signer: JournalSigner,
                    epoch_max_s: int) -> None:
    """Seal an idle unsealed tail and rotate the epoch key when it is too old."""
    while True:
        await asyncio.sleep(KEY_TICK_S)
        try:
            await _tick(journal, signer, epoch_max_s)
        except Exception:  # noqa: BLE001 - the timer must outlive one failed tick
            _LOG.warning("sealing or key rotation failed; retrying", exc_info=True)


async def _tick(journal: Journal, signer: JournalSigner, epoch_max_s: int) -> None:
    if signer.current is not None and signer.current.age_s() >= epoch_max_s:
        await journal.rotate("max_age")
    elif journal.seal_age_s() >= SEAL_INTERVAL_S:
        await journal.seal()
