"""Helpers for live-selling tests: an integration, signed webhook posts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from daemon.live.service import live_for
from daemon.live.signature import HEADER, sign
from daemon.web.keys import STALLBOX

EVENTS = "/api/v1/live/events"


async def integration(client: TestClient, name: str = "streamtool") -> str:
    """Create an integration on the running app; return its secret."""
    return await live_for(client.app[STALLBOX]).add_integration(name)


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat().replace("+00:00", "Z")


async def deliver(client: TestClient, secret: str, body: dict[str, Any],
                  t: int | None = None) -> ClientResponse:
    """POST one event signed with secret at time t (now by default)."""
    raw = json.dumps(body).encode()
    header = sign(secret, int(time.time()) if t is None else t, raw)
    return await client.post(EVENTS, data=raw, headers={
        HEADER: header, "Content-Type": "application/json"})


def head_seq(client: TestClient) -> int:
    return client.app[STALLBOX].journal.head_seq
