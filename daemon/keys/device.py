"""The device identity: an Ed25519 key made at first start, kept mode 0600."""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from daemon.errors import FatalError

DEVICE_KEY_FILE = "device.key"
_RAW = serialization.Encoding.Raw


@dataclass(frozen=True)
class DeviceIdentity:
    """The stall box's long-lived signing key; certifies epoch keys and sync batches."""

    private_key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, state_dir: Path) -> DeviceIdentity:
        """Load the key from the state dir, creating it (mode 0600) on first start."""
        path = state_dir / DEVICE_KEY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls._create(path)
        if len(raw) != 32:
            raise FatalError(f"{path} is damaged ({len(raw)} bytes, need 32)")
        if path.stat().st_mode & 0o077:
            raise FatalError(f"{path} is readable by others; chmod 600 it")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def _create(cls, path: Path) -> DeviceIdentity:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return cls(key)

    def sign(self, data: bytes) -> bytes:
        """Return the Ed25519 signature of data."""
        return self.private_key.sign(data)

    @property
    def public_bytes(self) -> bytes:
        """Return the 32-byte raw public key."""
        return self.private_key.public_key().public_bytes(
            _RAW, serialization.PublicFormat.Raw)

    def public_b64(self) -> str:
        """Return the public key as URL-safe base64 for enrolment."""
        return base64.urlsafe_b64encode(self.public_bytes).decode("ascii").rstrip("=")

    def enrolment_key(self) -> str:
        """Return the public key for a person to paste: standard base64.

        URL-safe base64 starts with "-" for one key in 64, which command lines
        read as an option ("--public-key -abc..."); the standard alphabet never
        does, and every reader of keys accepts both alphabets.
        """
        return base64.b64encode(self.public_bytes).decode("ascii").rstrip("=")


def verify_signature(public_bytes: bytes, signature: bytes, data: bytes) -> bool:
    """Return True when signature is public_bytes' Ed25519 signature of data."""
    try:
        Ed25519PublicKey.from_public_bytes(public_bytes).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
