"""Customer e-mail under per-day AES-GCM keys, and crypto-shredding of those keys."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from daemon.keys.datakeys import DataKeys, ShreddedError, TokenError

DAY = date(2024, 5, 1)
ADDRESS = "kundin@example.org"


def test_round_trip_and_nothing_readable_at_rest(tmp_path: Path) -> None:
    keys = DataKeys(tmp_path)
    token = keys.encrypt(DAY, ADDRESS, "sale-1")
    assert ADDRESS not in token and keys.decrypt(token, "sale-1") == ADDRESS
    assert keys.encrypt(DAY, ADDRESS, "sale-1") != token  # fresh nonce each time
    key_file = tmp_path / "datakeys" / "2024-05-01.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_token_is_bound_to_its_sale_and_tamper_evident(tmp_path: Path) -> None:
    keys = DataKeys(tmp_path)
    token = keys.encrypt(DAY, ADDRESS, "sale-1")
    with pytest.raises(TokenError):
        keys.decrypt(token, "sale-2")
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(TokenError):
        keys.decrypt(flipped, "sale-1")
    for bad in ("", "v1.x.y.z", "v2.2024-05-01.AAAA.AAAA", "a.b.c"):
        with pytest.raises(TokenError):
            keys.decrypt(bad, "sale-1")


def test_shredding_makes_a_day_unreadable_and_leaves_no_key(tmp_path: Path) -> None:
    keys = DataKeys(tmp_path)
    old = keys.encrypt(DAY, ADDRESS, "sale-1")
    key = (tmp_path / "datakeys" / "2024-05-01.key").read_bytes()
    new = keys.encrypt(date(2024, 6, 1), ADDRESS, "sale-2")
    shredded = keys.shred_expired(date(2024, 6, 2), retention_days=30,
                                  synced_through=date(2024, 6, 1))
    assert shredded == [DAY]
    with pytest.raises(ShreddedError):
        keys.decrypt(old, "sale-1")
    assert keys.decrypt(new, "sale-2") == ADDRESS
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or key not in path.read_bytes()


def test_unsynced_days_are_kept(tmp_path: Path) -> None:
    keys = DataKeys(tmp_path)
    keys.encrypt(DAY, ADDRESS, "sale-1")
    assert keys.shred_expired(date(2025, 1, 1), 30, synced_through=None) == []
    assert keys.shred_expired(date(2025, 1, 1), 30,
                              synced_through=date(2024, 4, 30)) == []
    assert keys.days() == [DAY]


def test_no_address_or_key_in_logs(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    keys = DataKeys(tmp_path)
    token = keys.encrypt(DAY, ADDRESS, "sale-1")
    key = (tmp_path / "datakeys" / "2024-05-01.key").read_bytes()
    keys.shred_expired(date(2025, 1, 1), 30, synced_through=date(2025, 1, 1))
    assert ADDRESS not in caplog.text and token not in caplog.text
    assert key.hex() not in caplog.text
