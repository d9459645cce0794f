"""The manager's creative form: multipart fields and the image, checked."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import BodyPartReader, web

from daemon.display.images import MAX_UPLOAD_BYTES, ImageRejected
from daemon.display.model import KINDS, LANGS, SIZES, Creative
from daemon.errors import InputError

MAX_FIELD_BYTES = 1024
FIELDS = ("kind", "title", "text", "sku", "url", "sponsor", "share", "start", "end",
          "hour_from", "hour_to", "cap_per_hour", "sizes", "langs", "zones")
_ZONE = re.compile(r"[A-Za-z0-9_-]{1,20}")


async def read_form(request: web.Request) -> tuple[dict[str, str], bytes]:
    """Read the creative form: text fields and at most one bounded image."""
    fields = dict.fromkeys(FIELDS, "")
    if request.content_type == "application/x-www-form-urlencoded":
        return await _read_plain(request, fields), b""
    if request.content_type != "multipart/form-data":
        raise InputError("send the form as multipart/form-data", field="body")
    reader = await request.multipart()
    image = b""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InputError("nested multipart is not accepted", field="body")
        if part.name == "image":
            image = await _read_part(part, MAX_UPLOAD_BYTES, "image")
        elif part.name in fields:
            raw = await _read_part(part, MAX_FIELD_BYTES, part.name)
            fields[part.name] = _text(raw, part.name).strip()
        else:
            await part.release()
    return fields, image


async def _read_plain(request: web.Request, fields: dict[str, str]
                      ) -> dict[str, str]:
    """Read a form without a file (urlencoded)."""
    form = await request.post()
    for name in fields:
        value = form.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_FIELD_BYTES:
            raise InputError(f"{name} must be short text", field=name)
        fields[name] = value.strip()
    return fields


async def _read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            if name == "image":
                raise ImageRejected(f"image is larger than {limit // 1024} KiB")
            raise InputError(f"{name} is too long", field=name)
        chunks.append(chunk)
    return b"".join(chunks)


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{name} is not UTF-8 text", field=name) from err


def creative_from_form(fields: dict[str, str], image_name: str,
                       catalog: dict[str, Any]) -> Creative:
    """Check the form's fields and return the creative they describe."""
    kind = _choice(fields["kind"] or "house", KINDS, "kind")
    title = _bounded(fields["title"], 1, 80, "title")
    sku = fields["sku"]
    if kind == "product" and sku not in catalog:
        raise InputError("choose a product by its sku", field="sku")
    sponsor = _bounded(fields["sponsor"], 1 if kind == "sponsor" else 0, 60,
                       "sponsor")
    hours = (_int(fields["hour_from"] or "0", 0, 23, "hour_from"),
             _int(fields["hour_to"] or "24", 1, 24, "hour_to"))
    if hours[0] >= hours[1]:
        raise InputError("the day-part must end after it starts", field="hour_to")
    start, end = _day(fields["start"], "start"), _day(fields["end"], "end")
    return Creative(
        id=secrets.token_hex(6), kind=kind, title=title,
        text=_bounded(fields["text"], 0, 200, "text"), image=image_name,
        sku=sku if kind == "product" else "", url=_url(fields["url"]),
        sponsor=sponsor,
        share_bp=_share_bp(fields["share"]) if kind == "sponsor" else 0,
        start_s=start, end_s=end + 86400 if end else 0, hours=hours,
        cap_per_hour=_int(fields["cap_per_hour"] or "0", 0, 100_000,
                          "cap_per_hour"),
        sizes=_list(fields["sizes"], SIZES, "sizes"),
        langs=_list(fields["langs"], LANGS, "langs"), zones=_zones(fields["zones"]))


def _choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}", field=name)
    return value


def _bounded(value: str, low: int, high: int, name: str) -> str:
    if not low <= len(value) <= high:
        raise InputError(f"{name} must be {low} to {high} characters", field=name)
    return value


def _int(value: str, low: int, high: int, name: str) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}",
                         field=name)
    return int(value)


def _share_bp(value: str) -> int:
    try:
        percent = Decimal(value.replace(",", "."))
    except InvalidOperation as err:
        raise InputError("share must be a percentage", field="share") from err
    if not Decimal(0) < percent <= Decimal(100):
        raise InputError("share must be above 0 and at most 100 %", field="share")
    return int(percent * 100)


def _day(value: str, name: str) -> int:
    """Return local midnight of a YYYY-MM-DD date as unix seconds (0 if empty)."""
    if not value:
        return 0
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as err:
        raise InputError(f"{name} must be a date like 2025-06-01", field=name) from err
    return int(day.astimezone().timestamp())


def _url(value: str) -> str:
    if value and not re.fullmatch(r"https?://[^\s<>\"']{1,290}", value):
        raise InputError("link must be an http(s) address", field="url")
    return value


def _list(value: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    items = tuple(sorted({v.strip() for v in value.split(",") if v.strip()}))
    for item in items:
        _choice(item, allowed, name)
    return items


def _zones(value: str) -> tuple[str, ...]:
    items = tuple(sorted({v.strip() for v in value.split(",") if v.strip()}))
    if len(items) > 10 or not all(_ZONE.fullmatch(z) for z in items):
        raise InputError("zones: up to 10 names of letters, digits, '_' or '-'",
                         field="zones")
    return items


