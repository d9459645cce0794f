"""The receiver's HTTP service: ingest batches and heads, enrol stalls, status,
invoices and the public receipt check."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from daemon.errors import InputError
from daemon.journal.store import utc_now
from daemon.trust.excerpt import MAX_TEXT, ExcerptCheck
from daemon.web.schema import loads_strict
from sync import protocol
from sync.errors import BatchRejected, GapError, JournalTruncated
from sync.receiver import receipt_page, verify
from sync.receiver.model import StallRecord, VerifiedBatch
from sync.receiver.storage import Storage

_LOG = logging.getLogger(__name__)
MAX_BATCH_BYTES = 4 * 1024 * 1024  # after decompression; the client sends ≤ 1 MiB
RATE_BATCHES_PER_S = 20.0
RATE_BURST = 40
INVOICE_PAGE_MAX = 500
ENROL_BODY_MAX = 4096
MAX_QUERY_INT = (1 << 63) - 1  # what SQLite stores in an INTEGER
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit takes '²' too
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
VERIFIERS: web.AppKey[Sequence[verify.EventVerifier]] = web.AppKey("verifiers")
routes = web.RouteTableDef()


class RateLimiter:
    """A token bucket per stall: rate batches per second, bursts up to burst."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, stall_id: str) -> float:
        """Spend one token; return 0, or how many seconds until one is free."""
        if self.rate_per_s <= 0:
            return 0.0
        now = time.monotonic()
        tokens, then = self._buckets.get(stall_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
        if tokens < 1:
            self._buckets[stall_id] = (tokens, now)
            return (1 - tokens) / self.rate_per_s
        self._buckets[stall_id] = (tokens - 1, now)
        return 0.0


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """Build an RFC 9457 problem+json response."""
    body = {"type": extra.pop("type", "about:blank"), "title": title,
            "status": status, "detail": detail, **extra}
    headers = {}
    if "retry_after_s" in extra:
        headers["Retry-After"] = str(extra["retry_after_s"])
    return web.json_response(body, status=status, headers=headers,
                             content_type="application/problem+json")


@web.middleware
async def errors_middleware(request: web.Request,
                            handler: Handler) -> web.StreamResponse:
    """Answer every refusal as problem+json."""
    try:
        return await handler(request)
    except BatchRejected as err:
        extra = {"field": err.field} if err.field else {}
        return problem(err.status, err.title, err.detail, **extra)
    except GapError as err:
        return problem(409, "Sequence gap", str(err), type=protocol.GAP_TYPE,
                       expected_seq=err.expected_seq,
                       acked_seq=err.expected_seq - 1)
    except JournalTruncated as err:
        return problem(409, "Journal truncated", f"{err}; nothing stored. Check the "
                       "stall's journal (stallbox verify) before syncing again",
                       type=protocol.TRUNCATED_TYPE, head_seq=err.reported_seq,
                       reached_seq=err.held_seq)
    except InputError as err:
        extra = {"field": err.field} if err.field else {}
        return problem(422, "Invalid input", err.detail, **extra)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return problem(err.status, err.reason, err.text or err.reason)


def _unknown_device(stall_id: str) -> BatchRejected:
    return BatchRejected(401, "Unknown device", f"stall {stall_id!r} is not enrolled "
                         "or was revoked; enrol its device key first")


def clock_offset_ms(clock: dict[str, Any], now: datetime) -> int | None:
    """Return receiver time minus the device's sent_at, in ms, if readable."""
    try:
        sent = datetime.fromisoformat(str(clock.get("sent_at")))
    except ValueError:
        return None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return round((now - sent).total_seconds() * 1000)


@routes.post("/v1/stalls/{stall_id}/batches")
async def post_batch(request: web.Request) -> web.Response:
    stall_id = request.match_info["stall_id"]
    storage = request.app[STORAGE]
    stall = await storage.get_stall(stall_id)
    if stall is None or stall.revoked:
        raise _unknown_device(stall_id)
    raw = await request.read()  # aiohttp inflates; client_max_size bounds the result
    verify.check_signature(stall, request.headers.get(protocol.SIGNATURE_HEADER, ""),
                           raw)
    wait_s = request.app[LIMITER].take(stall_id)
    if wait_s > 0:
        return problem(429, "Too many batches", "this stall sends faster than the "
                       "receiver allows", retry_after_s=math.ceil(wait_s))
    key = request.headers.get(protocol.IDEMPOTENCY_HEADER, "")
    batch = await asyncio.to_thread(verify.verify_batch, stall_id, raw, key)
    _run_verifiers(request.app[VERIFIERS], stall, batch)
    now = datetime.now(UTC)
    result = await storage.ingest(batch, utc_now(), clock_offset_ms(batch.clock, now))
    _LOG.debug("stall %s batch %d-%d: stored %d, acked %d", stall_id,
               batch.first_seq, batch.last_seq, result.stored, result.acked_seq)
    return web.json_response(protocol.ack_body(stall_id, result.acked_seq,
                                               result.stored))


@routes.post("/v1/stalls/{stall_id}/head")
async def post_head(request: web.Request) -> web.Response:
    """Record the chain head a stall reports; a head gone back is a truncation."""
    stall_id = request.match_info["stall_id"]
    storage = request.app[STORAGE]
    stall = await storage.get_stall(stall_id)
    if stall is None or stall.revoked:
        raise _unknown_device(stall_id)
    raw = await request.content.read(ENROL_BODY_MAX + 1)
    if len(raw) > ENROL_BODY_MAX:
        raise web.HTTPRequestEntityTooLarge(max_size=ENROL_BODY_MAX,
                                            actual_size=len(raw))
    verify.check_head_signature(
        stall, request.headers.get(protocol.SIGNATURE_HEADER, ""), raw)
    head, clock = verify.verify_head(stall_id, raw)
    result = await storage.push_head(stall_id, head, clock, utc_now())
    return web.json_response({"stall_id": stall_id, "acked_seq": result.acked_seq,
                              "head_seq": head.seq})


def _run_verifiers(verifiers: Sequence[verify.EventVerifier], stall: StallRecord,
                   batch: VerifiedBatch) -> None:
    for check in verifiers:
        check(stall, batch)


@routes.get("/v1/stalls/{stall_id}")
async def stall_status(request: web.Request) -> web.Response:
    stall = await request.app[STORAGE].get_stall(request.match_info["stall_id"])
    if stall is None:
        raise web.HTTPNotFound(text="no such stall")
    return web.json_response(stall.status())


@routes.get("/v1/stalls/{stall_id}/invoices")
async def list_invoices(request: web.Request) -> web.Response:
    if await request.app[STORAGE].get_stall(request.match_info["stall_id"]) is None:
        raise web.HTTPNotFound(text="no such stall")
    after = _int_query(request, "after_seq", 0)
    limit = min(_int_query(request, "limit", 100), INVOICE_PAGE_MAX)
    if limit < 1:
        raise BatchRejected(422, "Bad query", "limit must be at least 1",
                            field="limit")
    items = await request.app[STORAGE].invoices(request.match_info["stall_id"],
                                                after, limit)
    next_after = items[-1]["seq"] if len(items) == limit else None
    return web.json_response({"items": items, "next_after_seq": next_after})


@routes.get("/v1/stalls/{stall_id}/invoices/{sale_id}")
async def get_invoice(request: web.Request) -> web.Response:
    doc = await request.app[STORAGE].invoice(request.match_info["stall_id"],
                                             request.match_info["sale_id"])
    if doc is None:
        raise web.HTTPNotFound(text="no such invoice")
    return web.json_response(doc)


@routes.get("/v1/stalls/{stall_id}/streams")
async def stream_revenue(request: web.Request) -> web.Response:
    """Revenue per live stream (and per pinned offer) for a billing period."""
    stall_id, after, upto = await _period(request)
    streams = await request.app[STORAGE].stream_revenue(stall_id, after, upto)
    return web.json_response({"stall_id": stall_id, "after_seq": after,
                              "upto_seq": upto, "streams": streams})


@routes.get("/v1/stalls/{stall_id}/display")
async def display_totals(request: web.Request) -> web.Response:
    """Display impressions and conversions per slot and hour, and per sponsor."""
    stall_id, after, upto = await _period(request)
    totals = await request.app[STORAGE].display_totals(stall_id, after, upto)
    return web.json_response({"stall_id": stall_id, "after_seq": after,
                              "upto_seq": upto, **totals})


async def _period(request: web.Request) -> tuple[str, int, int]:
    """Return the stall and the seq range (after_seq, upto_seq] a statement covers."""
    stall_id = request.match_info["stall_id"]
    stall = await request.app[STORAGE].get_stall(stall_id)
    if stall is None:
        raise web.HTTPNotFound(text="no such stall")
    after = _int_query(request, "after_seq", 0)
    asked = _int_query(request, "upto_seq", stall.last_seq)
    if "upto_seq" in request.query and after > asked:
        raise BatchRejected(422, "Bad query", f"after_seq ({after}) is past upto_seq "
                            f"({asked}): the period (after_seq, upto_seq] is empty",
                            field="after_seq")
    return stall_id, after, min(asked, stall.last_seq)


@routes.post("/v1/stalls/{stall_id}/enrol")
async def enrol(request: web.Request) -> web.Response:
    stall_id = request.match_info["stall_id"]
    body = await _small_json(request)
    token, key_b64 = body.get("token"), body.get("public_key")
    if not isinstance(token, str) or not isinstance(key_b64, str):
        raise BatchRejected(422, "Invalid enrolment", "send token and public_key",
                            field="token" if not isinstance(token, str) else
                            "public_key")
    public_key = parse_public_key(key_b64)
    if not await request.app[STORAGE].redeem_enrolment_token(token, stall_id,
                                                             public_key):
        raise BatchRejected(401, "Bad enrolment token", "token unknown, used, "
                            "expired or for another stall", field="token")
    _LOG.info("stall %s enrolled with a one-time token", stall_id)
    return web.json_response({"stall_id": stall_id, "enrolled": True}, status=201)


async def _small_json(request: web.Request) -> dict[str, Any]:
    raw = await request.content.read(ENROL_BODY_MAX + 1)
    if len(raw) > ENROL_BODY_MAX:
        raise web.HTTPRequestEntityTooLarge(max_size=ENROL_BODY_MAX,
                                            actual_size=len(raw))
    try:
        body = loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BatchRejected(422, "Invalid JSON", str(err), field="body") from err
    except RecursionError as err:  # [[[[... past the interpreter's stack
        raise BatchRejected(422, "Invalid JSON", "body nested too deeply",
                            field="body") from err
    if not isinstance(body, dict):
        raise BatchRejected(422, "Invalid JSON", "must be an object", field="body")
    return body


def parse_public_key(text: str) -> bytes:
    """Decode an enrolment public key (URL-safe base64 of 32 bytes)."""
    try:
        key = protocol.b64decode(text.strip())
    except ValueError as err:
        raise BatchRejected(422, "Bad public key", "not base64",
                            field="public_key") from err
    if len(key) != 32:
        raise BatchRejected(422, "Bad public key", "must be 32 bytes (Ed25519, as "
                            "`stallbox identity` prints it)", field="public_key")
    return key


def _int_query(request: web.Request, name: str, default: int) -> int:
    """Return a query parameter given once as a whole number of ASCII digits."""
    values = request.query.getall(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise BatchRejected(422, "Bad query", f"{name} was given {len(values)} "
                            "times; give it once", field=name)
    text = values[0]
    if not _DIGITS.fullmatch(text):
        raise BatchRejected(422, "Bad query", f"{name} must be a whole number",
                            field=name)
    digits = text.lstrip("0") or "0"  # int() refuses thousands of digits
    if len(digits) > len(str(MAX_QUERY_INT)) or int(digits) > MAX_QUERY_INT:
        raise BatchRejected(422, "Bad query", f"{name} is too large (at most "
                            f"{MAX_QUERY_INT})", field=name)
    return int(digits)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/v1/receipts/verify")
async def verify_receipt_api(request: web.Request) -> web.Response:
    """Check a receipt's QR text against the journals received; public."""
    body = await _small_json(request)
    text = body.get("receipt")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise BatchRejected(422, "Invalid receipt", f"send receipt: the text under "
                            f"the QR code (at most {MAX_TEXT} characters)",
                            field="receipt")
    verdict = await _check_receipt(request, text)
    return web.json_response(verdict.as_json())


@routes.get("/verify")
async def verify_page(request: web.Request) -> web.Response:
    """Show the public receipt check form."""
    return receipt_page.render(None, "", "")


@routes.post("/verify")
async def verify_submit(request: web.Request) -> web.Response:
    """Check the posted receipt text and show the verdict."""
    form = await request.post()
    text = form.get("receipt", "")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        return receipt_page.render(None, "", "Paste the text under the receipt's "
                                   "QR code.", status=422)
    try:
        verdict = await _check_receipt(request, text)
    except InputError as err:
        return receipt_page.render(None, text, err.detail, status=422)
    return receipt_page.render(verdict.as_json(), text, "")


async def _check_receipt(request: web.Request, text: str) -> ExcerptCheck:
    verdict = await request.app[STORAGE].receipt_check(text)
    _LOG.debug("receipt check: %s", "genuine" if verdict.genuine else "refused")
    return verdict


def create_receiver_app(storage: Storage, *, rate_per_s: float = RATE_BATCHES_PER_S,
                        burst: int = RATE_BURST,
                        verifiers: Sequence[verify.EventVerifier] = (),
                        max_batch_bytes: int = MAX_BATCH_BYTES) -> web.Application:
    """Return the receiver application around a storage backend it will close."""
    app = web.Application(middlewares=[errors_middleware],
                          client_max_size=max_batch_bytes)
    app[STORAGE] = storage
    app[LIMITER] = RateLimiter(rate_per_s, burst)
    app[VERIFIERS] = tuple(verifiers)
    app.add_routes(routes)
    app.cleanup_ctx.append(_close_storage)
    return app


async def _close_storage(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STORAGE].close()
