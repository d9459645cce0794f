"""Receiver administration from the command line: enrol, tokens, revoke."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon.errors import InputError
from sync.errors import BatchRejected
from sync.receiver.app import parse_public_key
from sync.receiver.schema import STALL_ID_MAX
from sync.receiver.sqlite_store import DB_FILE, connect, enroll_sync


def check_stall_id(stall_id: str) -> str:
    """Refuse stall ids the daemon's config would refuse."""
    ok = 0 < len(stall_id) <= STALL_ID_MAX and all(
        c.isalnum() or c in "-_." for c in stall_id)
    if not ok:
        raise InputError("--stall must be 1-64 letters, digits, '-', '_' or '.'")
    return stall_id


def enroll(data_dir: Path, stall_id: str, public_key_b64: str) -> None:
    """Register a stall's device key in the receiver database."""
    try:
        key = parse_public_key(public_key_b64)
    except BatchRejected as err:
        raise InputError(f"--public-key: {err.detail}") from err
    conn = connect(data_dir / DB_FILE)
    try:
        enroll_sync(conn, check_stall_id(stall_id), key)
    finally:
        conn.close()


def revoke(data_dir: Path, stall_id: str) -> None:
    """Refuse the stall's batches from now on."""
    conn = connect(data_dir / DB_FILE)
    try:
        if not conn.execute("UPDATE stalls SET revoked = 1 WHERE stall_id = ?",
                            (stall_id,)).rowcount:
            raise InputError(f"no stall {stall_id!r} is enrolled")
    finally:
        conn.close()


def enrolment_token(data_dir: Path, stall_id: str, ttl_s: int) -> str:
    """Create and return a one-time enrolment token for the stall."""
    from sync.receiver.sqlite_store import SqliteStorage

    async def create() -> str:
        storage = SqliteStorage.in_dir(data_dir)
        try:
            return await storage.create_enrolment_token(check_stall_id(stall_id),
                                                        ttl_s)
        finally:
            await storage.close()

    return asyncio.run(create())
