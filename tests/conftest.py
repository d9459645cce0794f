"""Layered fixtures: a state dir, a config, a running app, a paired client."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from daemon.config import Config, parse_config
from daemon.pairing import token_hash
from daemon.web.app import create_app
from daemon.web.authz import CSRF_HEADER, csrf_token
from daemon.web.keys import STALLBOX

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO_CSV = REPO / "daemon" / "catalog" / "demo.csv"


def make_config(state_dir: Path, **sections: dict[str, Any]) -> Config:
    """Build a checked config for tests, with overrides per section."""
    data: dict[str, Any] = {
        "stall": {"name": "Testhof Stand", "currency": "EUR", "vat_id": "DE123"},
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(state_dir)},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, base_dir=state_dir)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def config(state_dir: Path) -> Config:
    return make_config(state_dir)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> TestClient:
    """An unpaired client of a running app (no printer configured)."""
    return await aiohttp_client(create_app(config))


async def pair(client: TestClient, name: str = "Till 1", *,
               manager: bool = True) -> str:
    """Pair through the public API with a freshly issued code; return the token.

    With manager=True the session counts as elevated by the manager PIN for an
    hour, so tests of manager actions need not type it (tests/test_lan.py does).
    """
    box = client.app[STALLBOX]
    code = await box.issue_pairing_code()
    resp = await client.post("/api/v1/pair", json={"code": code, "name": name})
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    if manager:
        box.lan.tokens[token_hash(token)].elevated_until = time.monotonic() + 3600
    return token


def use_pages(client: TestClient, token: str) -> None:
    """Send the token as the page cookie and the session's CSRF token as a header."""
    client.session.cookie_jar.update_cookies({"stallbox_token": token})
    client.session.headers[CSRF_HEADER] = csrf_token(token)


def page_headers(token: str) -> dict[str, str]:
    """Headers of a page request from a paired browser: cookie and CSRF token."""
    return {"Cookie": f"stallbox_token={token}", CSRF_HEADER: csrf_token(token)}


@pytest.fixture
async def token(client: TestClient) -> str:
    return await pair(client)


@pytest.fixture
async def stocked(client: TestClient, token: str) -> TestClient:
    """A paired client whose stall has the demo catalog imported."""
    resp = await client.post("/api/v1/catalog/import", data=DEMO_CSV.read_bytes(),
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200, await resp.text()
    return client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dumps(value: Any) -> str:
    return json.dumps(value)
