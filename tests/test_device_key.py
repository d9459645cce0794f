"""The device identity key: made once, mode 0600, stable, verifiable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import FatalError
from daemon.keys.device import DEVICE_KEY_FILE, DeviceIdentity, verify_signature


def test_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = DeviceIdentity.load_or_create(tmp_path)
    mode = (tmp_path / DEVICE_KEY_FILE).stat().st_mode & 0o777
    assert mode == 0o600
    again = DeviceIdentity.load_or_create(tmp_path)
    assert again.public_bytes == first.public_bytes
    signature = first.sign(b"batch")
    assert verify_signature(again.public_bytes, signature, b"batch")
    assert not verify_signature(again.public_bytes, signature, b"batch!")


def test_damaged_or_exposed_key_refuses_to_start(tmp_path: Path) -> None:
    DeviceIdentity.load_or_create(tmp_path)
    path = tmp_path / DEVICE_KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(FatalError, match="chmod 600"):
        DeviceIdentity.load_or_create(tmp_path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(FatalError, match="damaged"):
        DeviceIdentity.load_or_create(tmp_path)
