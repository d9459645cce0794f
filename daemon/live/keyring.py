"""Integration secrets: kept in a 0600 file in the state dir, never in the journal.

The journal is shipped to the cloud; a webhook secret in it would let anyone
holding a copy forge live prices. The journal records only that an integration
was added and its name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from pathlib import Path

from daemon.errors import InputError
from daemon.live.errors import IntegrationExists

_LOG = logging.getLogger(__name__)
FILE_NAME = "live-integrations.json"
SECRET_PREFIX = "sbl_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}")


def check_name(name: str) -> str:
    """Return a valid integration name or raise InputError."""
    if not _NAME.fullmatch(name):
        raise InputError("integration name: 1-40 letters, digits, space, '.', '_' "
                         "or '-', starting with a letter or digit", field="name")
    return name


def load(state_dir: Path) -> dict[str, str]:
    """Return {name: secret} of every integration (blocking)."""
    try:
        raw = (state_dir / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return {}
    data = json.loads(raw)
    return {str(k): str(v) for k, v in data.items()}


def add(state_dir: Path, name: str) -> str:
    """Make and store a secret for a new integration; return it (blocking)."""
    current = load(state_dir)
    if name in current:
        raise IntegrationExists(name)
    secret = new_secret()
    current[name] = secret
    _write(state_dir, current)
    _LOG.info("live integration %r added", name)
    return secret


def remove(state_dir: Path, name: str) -> str | None:
    """Forget an integration's secret; return it, or None if unknown (blocking)."""
    current = load(state_dir)
    secret = current.pop(name, None)
    if secret is not None:
        _write(state_dir, current)
    return secret


def put(state_dir: Path, name: str, secret: str) -> None:
    """Store a secret for an integration, replacing its old one (blocking)."""
    current = load(state_dir)
    current[name] = secret
    _write(state_dir, current)


def new_secret() -> str:
    """Return a fresh webhook secret."""
    return SECRET_PREFIX + secrets.token_hex(32)


def _write(state_dir: Path, data: dict[str, str]) -> None:
    """Replace the file atomically, 0600 from its first byte, fsync'd."""
    path = state_dir / FILE_NAME
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(json.dumps(data, sort_keys=True).encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
