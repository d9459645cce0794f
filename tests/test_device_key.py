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


def test_enrolment_key_never_looks_like_an_option_and_reads_back() -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from daemon.keys.epoch import unb64
    from sync.protocol import b64decode

    for _ in range(300):  # about 5 keys in 300 start with "-" in URL-safe form
        identity = DeviceIdentity(Ed25519PrivateKey.generate())
        text = identity.enrolment_key()
        assert not text.startswith("-")
        assert b64decode(text) == unb64(text) == identity.public_bytes
        assert b64decode(identity.public_b64()) == identity.public_bytes
    assert base64.b64encode(identity.public_bytes).decode().rstrip("=") == text
