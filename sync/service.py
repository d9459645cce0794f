"""Wire the sync worker into the daemon: identity, settings, network watch."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from daemon.config import Config
from daemon.journal.store import Journal
from daemon.keys.device import DeviceIdentity
from daemon.runtime import Stallbox
from sync.netwatch import NetWatch

if TYPE_CHECKING:
    # Imported where used: the client and its protocol cost start-up time in
    # a daemon that does not sync (#7).
    from sync.client import SyncSettings, SyncWorker

_LOG = logging.getLogger(__name__)


def settings_from(config: Config) -> SyncSettings:
    """Return the worker settings from the [sync] section."""
    from sync.client import SyncSettings

    return SyncSettings(url=config.sync_url, stall_id=config.sync_stall_id,
                        interval_s=float(config.sync_interval_s))


async def make_worker(config: Config, journal: Journal) -> SyncWorker:
    """Load the device key and build (not start) a worker for this journal."""
    from sync.client import SyncWorker

    identity = await asyncio.to_thread(DeviceIdentity.load_or_create,
                                       config.state_dir)
    return SyncWorker(journal, settings_from(config), identity.sign)


class SyncService:
    """The running worker and its network watch, as the daemon holds them."""

    def __init__(self, worker: SyncWorker) -> None:
        self.worker = worker
        self._watch = NetWatch(worker.network_changed)

    async def start(self) -> None:
        """Start the worker and the network watch."""
        await self.worker.start()
        self._watch.start()

    async def stop(self) -> None:
        """Stop watching and stop the worker (journaling its last acknowledgement)."""
        self._watch.stop()
        await self.worker.stop()


async def start_sync(box: Stallbox) -> SyncService | None:
    """Start syncing when [sync] url is configured."""
    if not box.config.sync_url:
        return None
    service = SyncService(await make_worker(box.config, box.journal))
    await service.start()
    box.sync = service.worker
    return service
