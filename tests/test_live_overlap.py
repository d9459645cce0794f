"""Overlapping live streams: the stream a sale counts for is the one whose
start was journaled last, however many started in the same second (M4)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from tests.livehelpers import deliver
from tests.test_live import _sale_event, live, pin, sell  # noqa: F401 - fixture

__all__ = ["live"]


async def _start(client: TestClient, secret: str, stream_id: str, t: int,
                 n: int = 1) -> None:
    body = {"id": f"start-{stream_id}-{n}", "type": "stream.started",
            "stream_id": stream_id}
    assert (await deliver(client, secret, body, t=t)).status == 202


async def _streams(client: TestClient, token: str) -> dict[str, Any]:
    from tests.conftest import auth

    resp = await client.get("/api/v1/live/streams", headers=auth(token))
    return {s["stream_id"]: s for s in (await resp.json())["items"]}


async def test_the_last_started_of_four_in_one_second_gets_the_sales(
        live: tuple[TestClient, str, str]) -> None:  # noqa: F811
    client, token, secret = live
    now = int(time.time())
    # journal order S-4, S-3, S-2, S-1: the old rule (id DESC) picked S-4
    for stream_id in ("S-4", "S-3", "S-2", "S-1"):
        await _start(client, secret, stream_id, now)
    pinned = pin()
    assert (await deliver(client, secret, pinned, t=now)).status == 202
    sale = await sell(client, token, "PESTO")
    event = await _sale_event(client, sale["id"])
    assert event["live"]["stream_id"] == "S-1"
    assert event["live"]["lines"][0]["stream_id"] == "S-1"
    streams = await _streams(client, token)
    assert streams["S-1"]["sales"] == 1
    assert all(streams[s]["sales"] == 0 for s in ("S-2", "S-3", "S-4"))
    # a stream started again later (journal order) takes over
    await _start(client, secret, "S-3", now, 2)
    again = await sell(client, token, "KERZE")
    assert (await _sale_event(client, again["id"]))["live"]["stream_id"] == "S-3"
