"""Errors as RFC 9457 problem documents (application/problem+json)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.errors import (
    ConflictError,
    FatalError,
    InputError,
    NotFoundError,
    RateLimitedError,
    RetryLaterError,
)

_LOG = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """Build a problem+json response with a plain-language detail."""
    body = {"type": "about:blank", "title": title, "status": status,
            "detail": detail, **extra}
    headers = {}
    if "retry_after_s" in extra:
        headers["Retry-After"] = str(extra["retry_after_s"])
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False),
                        content_type=PROBLEM_TYPE, headers=headers)


def from_exception(err: Exception) -> web.Response:
    """Map the daemon's error groups to HTTP statuses."""
    if isinstance(err, InputError):
        extra = {"field": err.field} if err.field else {}
        return problem(422, "Unprocessable input", err.detail, **extra)
    if isinstance(err, NotFoundError):
        return problem(404, "Not found", str(err))
    if isinstance(err, ConflictError):
        return problem(409, "Conflict", str(err))
    if isinstance(err, RateLimitedError):
        return problem(429, "Too many requests", str(err),
                       retry_after_s=err.retry_after_s)
    if isinstance(err, RetryLaterError):
        return problem(503, "Try again later", str(err), retry_after_s=5)
    if isinstance(err, FatalError):
        return problem(500, "Journal unavailable", str(err))
    _LOG.exception("unexpected error while handling a request")
    return problem(500, "Internal error", "unexpected error; see the daemon log")


def http_error(err: web.HTTPException) -> web.Response:
    """Turn aiohttp's own HTTP errors (404, 405, 413) into problem documents."""
    detail = {
        413: "request body too large",
        404: "no such route",
        405: "method not allowed on this route",
    }.get(err.status, err.reason)
    return problem(err.status, err.reason, detail)
