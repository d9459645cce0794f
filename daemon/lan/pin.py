"""The manager PIN: kept only as a salted scrypt hash in the state dir.

The hash lives in its own file (mode 0600), not in the journal, because the
journal is shipped to the cloud: six to twelve digits under scrypt are too few
to leave an offline guessing target outside the box. The journal records that
the PIN changed, never the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import InputError

_LOG = logging.getLogger(__name__)
PIN_FILE = "manager_pin.json"
MIN_DIGITS = 6
MAX_DIGITS = 12
# RFC 7914 section 2: N = 2**14, r = 8 costs 16 MiB and tens of milliseconds
# per guess, so the rate limit, not the CPU, is what stops a guesser.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class PinHash:
    """A salted scrypt hash of the manager PIN with its parameters."""

    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def check_pin_format(pin: str) -> str:
    """Return the PIN if it is 6 to 12 digits, else raise naming the field."""
    pin = pin.strip()
    if not (MIN_DIGITS <= len(pin) <= MAX_DIGITS and pin.isascii() and pin.isdigit()):
        raise InputError(f"the manager PIN is {MIN_DIGITS} to {MAX_DIGITS} digits",
                         field="pin")
    return pin


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=HASH_BYTES)


def hash_pin(pin: str) -> PinHash:
    """Return a fresh salted hash of a checked PIN (slow: run it off the loop)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return PinHash(salt, _scrypt(check_pin_format(pin), salt, SCRYPT_N, SCRYPT_R,
                                 SCRYPT_P))


def pin_matches(stored: PinHash, candidate: str) -> bool:
    """Return whether candidate is the PIN (slow: run it off the loop)."""
    if not (candidate.isascii() and candidate.isdigit()
            and len(candidate) <= MAX_DIGITS):
        return False
    got = _scrypt(candidate, stored.salt, stored.n, stored.r, stored.p)
    return hmac.compare_digest(got, stored.digest)


def load_pin(state_dir: Path) -> PinHash | None:
    """Read the stored PIN hash, or None when no PIN was set."""
    try:
        data = json.loads((state_dir / PIN_FILE).read_text("ascii"))
        return PinHash(base64.b64decode(data["salt"]), base64.b64decode(data["hash"]),
                       int(data["n"]), int(data["r"]), int(data["p"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        _LOG.error("manager PIN file unreadable (%s); set the PIN again",
                   type(err).__name__)
        return None


def store_pin(state_dir: Path, stored: PinHash) -> None:
    """Write the PIN hash atomically with mode 0600 (write, fsync, rename)."""
    text = json.dumps({"scheme": "scrypt", "n": stored.n, "r": stored.r,
                       "p": stored.p,
                       "salt": base64.b64encode(stored.salt).decode("ascii"),
                       "hash": base64.b64encode(stored.digest).decode("ascii")})
    path = state_dir / PIN_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
