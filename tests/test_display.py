"""Customer display: selection, cache freshness, SSR, SSE, uploads (#8)."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from daemon.display import images
from daemon.display.model import BUCKET_S, Cohort, Creative, Inventory, Pin
from daemon.display.select import select_slot
from daemon.display.service import display_for
from daemon.web import pages_till
from daemon.web.keys import STALLBOX
from tests.conftest import auth, use_pages
from tests.livehelpers import deliver, integration, rfc3339

CATALOG = (
    b"sku,name,price,tax_class,category,variant,weight_g,gift_card\n"
    b"HONIG,Waldhonig,\"7,50\",reduced,Feinkost,,500,no\n"
    b"SEIFE,Lavendelseife,\"4,20\",standard,Bad,,100,no\n"
)
NEW_PRICE = CATALOG.replace(b'"7,50"', b'"8,10"')
DAY_BUCKETS = 86400 // BUCKET_S

cohorts = st.builds(Cohort, st.sampled_from("sml"), st.sampled_from(["de", "en"]),
                    st.sampled_from(["", "A", "B"]))
creatives = st.lists(st.builds(
    Creative, id=st.text("abcdef0123", min_size=1, max_size=6),
    kind=st.sampled_from(["house", "sponsor", "product"]), title=st.just("t"),
    sku=st.sampled_from(["", "HONIG"]), share_bp=st.integers(0, 6000),
    hours=st.sampled_from([(0, 24), (8, 18)]), sizes=st.sampled_from([(), ("s",)])),
    max_size=6, unique_by=lambda c: c.id)


def inventory(items: list[Creative], pins: tuple[Pin, ...] = (),
              version: int = 1) -> Inventory:
    return Inventory(version, tuple(items), pins, {"HONIG": ("Waldhonig", 750)})


@settings(max_examples=200, deadline=None)
@given(creatives, cohorts, st.integers(0, 10**7))
def test_same_inputs_give_the_same_slot(items: list[Creative], cohort: Cohort,
                                        bucket: int) -> None:
    first = select_slot(inventory(items), cohort, bucket)
    again = select_slot(inventory(list(reversed(items))),
                        Cohort(cohort.size, cohort.lang, cohort.zone), bucket)
    assert first == again


def test_sponsors_get_their_share_of_voice_over_a_day() -> None:
    items = [Creative("a", "sponsor", "A", sponsor="A", share_bp=3000),
             Creative("b", "sponsor", "B", sponsor="B", share_bp=1250),
             Creative("h", "house", "House")]
    inv = inventory(items)
    start = 20_000 * DAY_BUCKETS
    for cohort in (Cohort(), Cohort("l", "en", "B")):
        shown = [select_slot(inv, cohort, b).id
                 for b in range(start, start + DAY_BUCKETS)]
        assert abs(shown.count("c:a") / DAY_BUCKETS - 0.30) < 0.005
        assert abs(shown.count("c:b") / DAY_BUCKETS - 0.125) < 0.005


def test_ineligible_sponsor_band_goes_to_the_house_not_other_sponsors() -> None:
    items = [Creative("a", "sponsor", "A", share_bp=5000, sizes=("l",)),
             Creative("b", "sponsor", "B", share_bp=2000),
             Creative("h", "house", "House")]
    shown = [select_slot(inventory(items), Cohort("s"), b).id
             for b in range(DAY_BUCKETS)]
    assert "c:a" not in shown
    assert abs(shown.count("c:b") / DAY_BUCKETS - 0.20) < 0.005
    pins = (Pin("HONIG", 500, time.time() + 60),)
    assert select_slot(inventory(items, pins), Cohort("s"), 3).kind in (
        "pin", "sponsor")


@pytest.fixture
async def shop(client: TestClient, token: str) -> TestClient:
    resp = await client.post("/api/v1/catalog/import", data=CATALOG,
                             headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    use_pages(client, token)
    return client


def png_bytes(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 120, 40) if mode == "RGB" else 1).save(out, "PNG")
    return out.getvalue()


async def save_creative(client: TestClient, image: bytes | None = None,
                        filename: str = "ad.png", status: int = 200,
                        **fields: str) -> str:
    form = FormData()
    for key, value in {"kind": "house", "title": "Frische Waffeln",
                       **fields}.items():
        form.add_field(key, value)
    if image is not None:
        form.add_field("image", io.BytesIO(image), filename=filename,
                       content_type="image/png")
    resp = await client.post("/display/manage/creatives", data=form)
    assert resp.status == status, await resp.text()
    return await resp.text()


async def display_page(client: TestClient, query: str = "till=Till%201") -> str:
    resp = await client.get(f"/display?{query}")
    assert resp.status == 200
    return await resp.text()


async def test_first_response_contains_the_creative(shop: TestClient) -> None:
    await save_creative(shop, png_bytes(), text="Nur heute", url="https://x.test/w")
    text = await display_page(shop)
    assert "Frische Waffeln" in text and "Nur heute" in text
    assert '<img src="/display/creative/' in text and "<svg" in text
    name = text.split('<img src="/display/creative/')[1].split('"')[0]
    image = await shop.get(f"/display/creative/{name}")
    assert image.status == 200 and image.content_type == "image/jpeg"
    assert '<meta http-equiv="refresh"' in text and "data-events=" in text


async def test_cache_hits_then_a_price_change_shows_at_once(shop: TestClient,
                                                            token: str) -> None:
    await save_creative(shop, kind="product", sku="HONIG", title="Honig")
    display = display_for(shop.app[STALLBOX])
    assert "7,50 €" in await display_page(shop)
    hits = display.cache.hits
    assert "7,50 €" in await display_page(shop)
    assert display.cache.hits == hits + 1
    resp = await shop.post("/api/v1/catalog/import", data=NEW_PRICE,
                           headers={"Content-Type": "text/csv", **auth(token)})
    assert resp.status == 200
    text = await display_page(shop)
    assert "8,10 €" in text and "7,50 €" not in text


async def test_a_live_pin_shows_at_once_and_goes_at_its_expiry(
        shop: TestClient) -> None:
    await save_creative(shop, kind="product", sku="HONIG", title="Honig")
    assert "Live now" not in await display_page(shop)
    secret = await integration(shop)
    body = {"id": "p1", "type": "product.pinned", "sku": "HONIG",
            "price_minor": 600, "until": rfc3339(time.time() + 1.0)}
    assert (await deliver(shop, secret, body)).status == 202
    text = await display_page(shop)
    assert "Live now" in text and "<s>7,50 €</s> <strong>6,00 €</strong>" in text
    await asyncio.sleep(1.05)
    text = await display_page(shop)
    assert "Live now" not in text and "6,00 €" not in text


async def test_display_sees_the_cart_within_100_ms(
        shop: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    changed: list[float] = []
    apply = pages_till.apply_cart_action

    async def timed(*args: Any) -> None:
        # Timed from the start of the till's change: the display is told inside
        # apply(), so its event can arrive before apply() has returned here.
        changed.append(time.perf_counter())
        await apply(*args)

    monkeypatch.setattr(pages_till, "apply_cart_action", timed)
    resp = await shop.get("/display/events?till=Till%201")
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    assert (await _next_event(resp))[0] == "idle"
    change = asyncio.create_task(
        shop.post("/till/cart", data={"action": "add", "sku": "HONIG"}))
    event, data = await asyncio.wait_for(_next_cart_event(resp), 1.0)
    elapsed = time.perf_counter() - changed[0]
    await change
    assert event == "cart" and "Waldhonig" in data and "7,50 €" in data
    assert elapsed < 0.1, elapsed
    resp.close()


async def _next_cart_event(resp: Any) -> tuple[str, str]:
    """Skip other events (a slot rotating on its time bucket) up to the cart."""
    while True:
        event, data = await _next_event(resp)
        if event == "cart":
            return event, data


async def _next_event(resp: Any) -> tuple[str, str]:
    event, data = "", []
    while True:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and event:
            return event, "\n".join(data)


async def test_thank_you_shows_change_and_conversion_is_counted(
        shop: TestClient) -> None:
    await save_creative(shop, kind="product", sku="HONIG", title="Honig")
    await display_page(shop)
    await shop.post("/till/cart", data={"action": "add", "sku": "HONIG"})
    till = await (await shop.get("/till")).text()
    ref = till.split('name="client_ref" value="')[1].split('"')[0]
    await shop.post("/till/checkout", data={"client_ref": ref, "tendered": "10"})
    text = await display_page(shop)
    assert "Thank you!" in text and "2,50 €" in text
    display = display_for(shop.app[STALLBOX])
    await display.flush()
    stats = await (await shop.get("/api/v1/display/stats")).json()
    row = next(r for r in stats["items"] if r["slot"].startswith("c:"))
    assert row["impressions"] >= 1 and row["conversions"] == 1
    assert row["shown_s"] >= BUCKET_S


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(side: int = 60_000) -> bytes:
    """A tiny PNG whose header declares side × side pixels."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side // 8 + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize(("data", "message"), [
    (b"<script>alert(1)</script>", "not a PNG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>",
     "not a PNG"),
    (b"GIF89a" + b"<script>alert(1)</script>", "damaged"),
    (bomb_png(), "too many pixels"),
    (bomb_png(4500), "at most 4096 px"),
    (bomb_png(4000), "pixels"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "damaged"),
    (png_bytes() + b"x" * (images.MAX_UPLOAD_BYTES), "larger than"),
])
async def test_malicious_uploads_are_refused(shop: TestClient, data: bytes,
                                             message: str) -> None:
    seq = shop.app[STALLBOX].journal.head_seq
    text = await save_creative(shop, data, status=422)
    assert message in text
    assert shop.app[STALLBOX].journal.head_seq == seq
    assert not list((shop.app[STALLBOX].config.state_dir / "creatives").glob(
        "*")) if (shop.app[STALLBOX].config.state_dir / "creatives").exists() \
        else True


def test_trailing_payload_does_not_survive_re_encoding() -> None:
    clean = images.clean_image(png_bytes(mode="RGB") + b"<script>alert(1)</script>")
    assert b"<script>" not in clean.data
    assert (clean.width, clean.height, clean.extension) == (40, 30, "jpg")
    alpha = images.clean_image(png_bytes(mode="RGBA"))
    assert alpha.extension == "png"


async def test_preview_and_manage_pages_render(shop: TestClient) -> None:
    await save_creative(shop, kind="sponsor", sponsor="Mühle <Nord>", share="25",
                        title="<b>Mehl</b>")
    manage = await (await shop.get("/display/manage")).text()
    assert "M&#252;hle &lt;Nord&gt;" in manage or "Mühle &lt;Nord&gt;" in manage
    preview = await (await shop.get("/display/preview?size=l&lang=en")).text()
    assert preview.count('class="slot') == 8
    assert "<b>Mehl</b>" not in preview


async def test_bad_creative_fields_are_named(shop: TestClient) -> None:
    for fields, word in (({"kind": "product", "sku": "NOPE"}, "sku"),
                         ({"kind": "sponsor", "sponsor": "X", "share": "120"},
                          "share"),
                         ({"hour_from": "18", "hour_to": "8"}, "day-part"),
                         ({"url": "javascript:alert(1)"}, "http")):
        text = await save_creative(shop, status=422, **fields)
        assert word in text, (fields, text[:200])


def test_conversion_window_comes_from_config(tmp_path: Any) -> None:
    from daemon.config import parse_config

    config = parse_config({"stall": {"name": "X"}, "display": {
        "conversion_window_s": 120}}, base_dir=tmp_path)
    assert config.display_conversion_window_s == 120
    from daemon.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config({"stall": {"name": "X"}, "display": {
            "conversion_window_s": 0}}, base_dir=tmp_path)
    assert caught.value.key == "display.conversion_window_s"
