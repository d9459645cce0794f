"""The OpenAPI 3.1 description of /api/v1, built from the router and body specs."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from daemon import __version__

LIVE_EVENTS = "/api/v1/live/events"
PROBLEM = {"application/problem+json": {"schema": {"type": "object", "properties": {
    "type": {"type": "string"}, "title": {"type": "string"},
    "status": {"type": "integer"}, "detail": {"type": "string"},
    "field": {"type": "string"}}}}}


def _bodies() -> dict[tuple[str, str], dict[str, Any]]:
    from daemon.ereceipt.web import EMAIL_BODY
    from daemon.live.events import SPECS as LIVE_SPECS
    from daemon.web.api import PAIR_BODY, SALE_BODY
    from daemon.web.api_billing import REFUND_BODY, SHIFT_CLOSE_BODY
    from daemon.web.api_lan import ELEVATE_BODY
    from daemon.web.api_payments import PAY_CASH_BODY, RESOLVE_BODY, RETRY_BODY
    from daemon.web.giftcards import BALANCE_BODY
    from daemon.web.trust import CLOSE_DAY_BODY, VERIFY_BODY

    return {
        ("POST", "/api/v1/pair"): _json(PAIR_BODY.openapi()),
        ("POST", "/api/v1/sales"): _json(SALE_BODY.openapi()),
        ("POST", "/api/v1/sales/{id}/refunds"): _json(REFUND_BODY.openapi()),
        ("POST", "/api/v1/shifts/close"): _json(SHIFT_CLOSE_BODY.openapi()),
        ("POST", "/api/v1/payments"): _json(RETRY_BODY.openapi()),
        ("POST", "/api/v1/payments/{id}/resolve"): _json(RESOLVE_BODY.openapi()),
        ("POST", "/api/v1/sales/{id}/pay-cash"): _json(PAY_CASH_BODY.openapi()),
        ("POST", "/api/v1/elevate"): _json(ELEVATE_BODY.openapi()),
        ("POST", "/api/v1/receipts/verify"): _json(VERIFY_BODY.openapi()),
        ("POST", "/api/v1/days/close"): _json(CLOSE_DAY_BODY.openapi()),
        ("POST", "/api/v1/sales/{id}/email"): _json(EMAIL_BODY.openapi()),
        ("POST", "/api/v1/gift-cards/balance"): _json(BALANCE_BODY.openapi()),
        ("POST", LIVE_EVENTS): _json(
            {"oneOf": [spec.openapi() for spec in LIVE_SPECS.values()]}),
        ("POST", "/api/v1/catalog/import"): {
            "text/csv": {"schema": {"type": "string"}}},
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def build_openapi(router: web.UrlDispatcher) -> dict[str, Any]:
    """Describe every /api/v1, /healthz and /metrics route the router serves."""
    bodies = _bodies()
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(("/api/v1", "/healthz",
                                                            "/metrics")):
            continue
        operation: dict[str, Any] = {
            "operationId": route.handler.__name__,
            "responses": {"default": {"description": "error", "content": PROBLEM}},
        }
        if re.search(r"\{(\w+)\}", path):
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True,
                 "schema": {"type": "string"}}
                for name in re.findall(r"\{(\w+)\}", path)]
        if (route.method, path) in bodies:
            operation["requestBody"] = {"required": True,
                                        "content": bodies[(route.method, path)]}
        public = path in ("/api/v1/pair", "/healthz")
        operation["security"] = [] if public else [{"bearer": []}]
        if path == LIVE_EVENTS:  # HMAC of the body instead of a token (#8)
            operation["security"] = [{"signature": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stallbox", "version": __version__},
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "signature": {"type": "apiKey", "in": "header",
                          "name": "Stallbox-Signature"}}},
        "paths": paths,
    }
