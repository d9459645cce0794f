"""Per-day data keys for customer e-mail: AES-256-GCM at rest, shredded after use.

An address given for an e-receipt (with consent) is stored only as a token
``v1.<day>.<nonce>.<ciphertext>`` sealed under that day's key, with the sale id
as associated data so a token cannot be moved to another sale. When the day's
sales have synced and the retention period passed, the day key file is
overwritten, fsync'd and unlinked: every address of that day becomes unreadable
at once, wherever copies of the tokens went (crypto-shredding). Nothing here
logs an address, a token or a key.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import date, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.errors import InputError, NotFoundError
from daemon.keys.epoch import b64, erase_file, fsync_dir, unb64

_LOG = logging.getLogger(__name__)
DATA_KEY_DIR = "datakeys"
TOKEN_VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
_DAY = re.compile(r"^\d{4}-\d\d-\d\d$")


class ShreddedError(NotFoundError):
    """Raised when the day key of a token was erased; the address is gone for good."""


class TokenError(InputError):
    """Raised when a token is malformed or was altered."""


class DataKeys:
    """The day keys in one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / DATA_KEY_DIR

    def encrypt(self, day: date, plaintext: str, sale_id: str) -> str:
        """Seal plaintext under the day's key, bound to sale_id; return the token."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._key(day, create=True)).encrypt(
            nonce, plaintext.encode("utf-8"), _aad(sale_id))
        return ".".join((TOKEN_VERSION, day.isoformat(), b64(nonce), b64(sealed)))

    def decrypt(self, token: str, sale_id: str) -> str:
        """Open a token; raise ShreddedError when its day key is gone."""
        day, nonce, sealed = _split(token)
        try:
            plain = AESGCM(self._key(day, create=False)).decrypt(
                nonce, sealed, _aad(sale_id))
        except InvalidTag as err:
            raise TokenError("the token was altered or belongs to another sale",
                             field="email") from err
        return plain.decode("utf-8")

    def shred(self, day: date) -> None:
        """Erase one day's key: overwrite, fsync, unlink."""
        erase_file(self._path(day))

    def shred_expired(self, today: date, retention_days: int,
                      synced_through: date | None) -> list[date]:
        """Erase every day key past retention whose sales have all synced."""
        if synced_through is None:
            return []
        cutoff = min(today - timedelta(days=retention_days), synced_through)
        shredded = [day for day in self.days() if day <= cutoff]
        for day in shredded:
            self.shred(day)
        if shredded:
            _LOG.info("shredded %d day keys up to %s", len(shredded), cutoff)
        return shredded

    def days(self) -> list[date]:
        """Return the days that still have a key."""
        if not self.dir.exists():
            return []
        names = (p.stem for p in self.dir.glob("*.key"))
        return sorted(date.fromisoformat(n) for n in names if _DAY.match(n))

    def _path(self, day: date) -> Path:
        return self.dir / f"{day.isoformat()}.key"

    def _key(self, day: date, *, create: bool) -> bytes:
        path = self._path(day)
        try:
            key = path.read_bytes()
        except FileNotFoundError as err:
            if not create:
                raise ShreddedError(f"the data key of {day} was shredded") from err
            return self._create(path)
        if len(key) != KEY_BYTES:
            raise ShreddedError(f"the data key of {day} is damaged")
        return key

    def _create(self, path: Path) -> bytes:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.dir)
        return key


def _aad(sale_id: str) -> bytes:
    return f"stallbox.email.v1|{sale_id}".encode()


def _split(token: str) -> tuple[date, bytes, bytes]:
    parts = token.split(".")
    try:
        if len(parts) != 4 or parts[0] != TOKEN_VERSION or not _DAY.match(parts[1]):
            raise ValueError("shape")
        day = date.fromisoformat(parts[1])
        nonce, sealed = unb64(parts[2]), unb64(parts[3])
    except ValueError as err:
        raise TokenError("not an e-mail token", field="email") from err
    if len(nonce) != NONCE_BYTES or len(sealed) < 16:
        raise TokenError("not an e-mail token", field="email")
    return day, nonce, sealed
