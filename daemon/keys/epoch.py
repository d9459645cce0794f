"""Ephemeral epoch keys: made at rotation, certified, erased when their epoch ends.

An epoch key signs the journal's seals and the receipts of one epoch (a shift,
at most ``[keys] epoch_max_s``). Its private part lives in one file,
``epoch-<n>.key`` (mode 0600), and in one OpenSSL key object. At rotation the
next key is written and fsync'd *before* its certificate commits, and the old
file is overwritten with zeros, fsync'd and unlinked only *after*; a crash in
between leaves either an uncertified new file or a closed old one, and both are
erased at the next start.

Known limits of erasure: flash translation layers and copy-on-write file
systems may keep the old blocks, so overwriting is best effort below the file
system; and CPython cannot wipe memory, so "dropped from memory" means every
reference to the key object is released (OpenSSL clears the key when freed) and
the transient raw bytes are left to the allocator.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daemon.errors import FatalError
from daemon.journal.canonical import canonical_bytes
from daemon.keys.device import verify_signature

_LOG = logging.getLogger(__name__)
_RAW = serialization.Encoding.Raw
_FILE = re.compile(r"^epoch-(\d{1,12})\.key$")
KEY_BYTES = 32
CERT_KIND = "key.epoch"
DEVICE_SIGNER = "device"


def b64(raw: bytes) -> str:
    """Return URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    """Decode base64 (URL-safe or standard alphabet), padded or not; ValueError."""
    text = text.rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_+/-]*", text):
        raise ValueError("not base64")
    text = text.replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(slots=True)
class EpochKey:
    """One epoch's signing key and where its private part is kept."""

    epoch: int
    private_key: Ed25519PrivateKey | None
    public_bytes: bytes
    path: Path
    started_monotonic: float = field(default_factory=time.monotonic)

    def sign(self, data: bytes) -> bytes:
        """Sign data; refuse once the key was erased."""
        if self.private_key is None:
            raise FatalError(f"epoch {self.epoch} key was erased")
        return self.private_key.sign(data)

    def age_s(self) -> float:
        """Return the seconds since this key was made or loaded."""
        return time.monotonic() - self.started_monotonic


def key_path(state_dir: Path, epoch: int) -> Path:
    """Return the file an epoch's private key is kept in."""
    return state_dir / f"epoch-{epoch}.key"


def key_files(state_dir: Path) -> dict[int, Path]:
    """Return every epoch key file in the state dir by epoch number."""
    found = {}
    for path in state_dir.iterdir():
        match = _FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def create_key(state_dir: Path, epoch: int) -> EpochKey:
    """Make a new epoch key and write it durably (file and directory fsync'd)."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    path = key_path(state_dir, epoch)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(state_dir)
    return EpochKey(epoch, key, _public(key), path)


def load_key(path: Path, epoch: int) -> EpochKey:
    """Load an epoch key file; raise FatalError when it is damaged or exposed."""
    raw = bytearray(path.read_bytes())
    try:
        if len(raw) != KEY_BYTES:
            raise FatalError(f"{path} is damaged ({len(raw)} bytes)")
        if path.stat().st_mode & 0o077:
            raise FatalError(f"{path} is readable by others; chmod 600 it")
        key = Ed25519PrivateKey.from_private_bytes(bytes(raw))
    finally:
        raw[:] = bytes(len(raw))
    return EpochKey(epoch, key, _public(key), path)


def erase_key(key: EpochKey) -> None:
    """Overwrite the key file with zeros, fsync, unlink it and drop the key."""
    key.private_key = None
    erase_file(key.path)


def erase_file(path: Path) -> None:
    """Overwrite a key file with zeros, fsync it, unlink it, fsync the directory."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, bytes(max(size, KEY_BYTES)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)
    _LOG.info("erased epoch key file %s", path.name)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (a create, rename or unlink in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


# -- certificates -------------------------------------------------------------


def cert_message(cert: dict[str, Any]) -> bytes:
    """Return the bytes a certificate's signature covers (all but the signature)."""
    signed = {k: v for k, v in cert.items() if k != "signature"}
    return canonical_bytes({"type": "stallbox.epoch-cert.v1", **signed})


def make_certificate(*, stall_id: str, new: EpochKey, head_seq: int,
                     head_hash: bytes, signer: str, reason: str,
                     sign: Any) -> dict[str, Any]:
    """Certify a new epoch key and the chain head it starts after."""
    cert: dict[str, Any] = {
        "stall_id": stall_id, "epoch": new.epoch, "public_key": b64(new.public_bytes),
        "head_seq": head_seq, "head_hash": head_hash.hex(), "signer": signer,
        "reason": reason,
    }
    cert["signature"] = b64(sign(cert_message(cert)))
    return cert


def check_certificate(cert: dict[str, Any], signer_public: bytes) -> bool:
    """Return True when cert carries a valid signature by signer_public."""
    try:
        signature = unb64(str(cert["signature"]))
    except (KeyError, ValueError):
        return False
    return verify_signature(signer_public, signature, cert_message(cert))


def certified_stall_id(journal: Path) -> str | None:
    """Return the stall id the journal's newest epoch certificate names.

    One indexed read of the ``epochs`` read model (its primary key is the
    epoch), so it costs the same on an empty journal and on a million events.
    None when there is no journal, no certificate yet, or nothing readable:
    then no id is set yet, and opening the journal reports real damage.
    """
    if not journal.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        row = conn.execute(
            "SELECT cert FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
        cert = json.loads(bytes(row[0])) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        conn.close()
    stall_id = cert.get("stall_id") if isinstance(cert, dict) else None
    return stall_id if isinstance(stall_id, str) else None
