"""The journal writer's signing keys: the live epoch key and a pending rotation.

Only the journal's writer thread calls into a JournalSigner once the daemon
runs, so it needs no lock. A rotation is two-phase, tied to the writer's
transaction: ``begin_rotation`` writes the next key and returns its
certificate (signed by the live key, or by the device key when there is none);
``commit`` after the COMMIT erases the old key; ``abort`` after a rollback
erases the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.journal.canonical import canonical_bytes
from daemon.keys.device import DeviceIdentity
from daemon.keys.epoch import (
    DEVICE_SIGNER,
    EpochKey,
    create_key,
    erase_file,
    erase_key,
    key_files,
    load_key,
    make_certificate,
)

_LOG = logging.getLogger(__name__)


def seal_message(stall_id: str, epoch: int, seq: int, digest: bytes) -> bytes:
    """Return the bytes a seal's signature covers: the chain head at seq."""
    return canonical_bytes({"type": "stallbox.seal.v1", "stall_id": stall_id,
                            "epoch": epoch, "seq": seq, "hash": digest.hex()})


@dataclass(frozen=True, slots=True)
class Certified:
    """The last certified epoch as the journal records it."""

    epoch: int
    public_key: bytes


class JournalSigner:
    """Signs seals and receipts with the live epoch key; rotates it on demand."""

    def __init__(self, state_dir: Path, device: DeviceIdentity, stall_id: str) -> None:
        self.state_dir = state_dir
        self.device = device
        self.stall_id = stall_id
        self.current: EpochKey | None = None
        self.pending: EpochKey | None = None

    def adopt(self, certified: Certified | None) -> None:
        """Load the certified epoch's key and erase every other key file."""
        for epoch, path in sorted(key_files(self.state_dir).items()):
            if certified and epoch == certified.epoch and self.current is None:
                key = load_key(path, epoch)
                if key.public_bytes == certified.public_key:
                    self.current = key
                    continue
                erase_key(key)
                continue
            _LOG.info("erasing epoch %d key left from a closed or uncertified epoch",
                      epoch)
            erase_file(path)

    @property
    def active(self) -> EpochKey | None:
        """Return the key that signs now: the pending one inside a rotation."""
        return self.pending or self.current

    def sign(self, data: bytes) -> tuple[int, bytes]:
        """Sign data with the active epoch key; return (epoch, signature)."""
        key = self.active
        if key is None:
            raise LookupError("no epoch key yet")
        return key.epoch, key.sign(data)

    def seal(self, seq: int, digest: bytes) -> tuple[int, bytes]:
        """Sign the chain head; return (epoch, signature)."""
        key = self.active
        if key is None:
            raise LookupError("no epoch key yet")
        return key.epoch, key.sign(seal_message(self.stall_id, key.epoch, seq, digest))

    def begin_rotation(self, head_seq: int, head_hash: bytes, reason: str,
                       next_epoch: int) -> dict[str, Any]:
        """Write the next epoch key; return its certificate, signed by the live key."""
        if self.pending is not None:
            raise RuntimeError("a rotation is already pending")
        new = create_key(self.state_dir, next_epoch)
        old = self.current
        signer = DEVICE_SIGNER if old is None else str(old.epoch)
        sign = self.device.sign if old is None else old.sign
        cert = make_certificate(stall_id=self.stall_id, new=new, head_seq=head_seq,
                                head_hash=head_hash, signer=signer, reason=reason,
                                sign=sign)
        self.pending = new
        return cert

    def commit(self) -> None:
        """Make the pending key live and erase the closed epoch's key."""
        if self.pending is None:
            return
        old, self.current, self.pending = self.current, self.pending, None
        if old is not None:
            erase_key(old)
        _LOG.info("epoch %d started", self.current.epoch)

    def abort(self) -> None:
        """Erase a pending key whose certificate did not commit."""
        if self.pending is not None:
            erase_key(self.pending)
            self.pending = None
