"""Request latency histograms and the Prometheus text exposition of /metrics."""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram of one route's latencies, in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total_s: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.total_s += seconds
        self.n += 1


@dataclass(slots=True)
class Registry:
    """Latency histograms by (method, route) and response counts by status."""

    latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    responses: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.latency.setdefault((method, route), Histogram()).observe(seconds)
        key = (method, route, status)
        self.responses[key] = self.responses.get(key, 0) + 1


def middleware(registry: Registry) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return a middleware timing every routed request into the registry."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            registry.record(request.method, route, status,
                            time.perf_counter() - start)

    return timed


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def histogram_lines(registry: Registry) -> Iterable[str]:
    """Yield the request latency histograms in Prometheus text format."""
    name = "stallbox_http_request_duration_seconds"
    yield f"# HELP {name} Time from request routed to response, by route."
    yield f"# TYPE {name} histogram"
    for (method, route), hist in sorted(registry.latency.items()):
        labels = f'method="{method}",route="{_label(route)}"'
        running = 0
        for bound, count in zip((*BUCKETS_S, "+Inf"), hist.counts, strict=True):
            running += count
            yield f'{name}_bucket{{{labels},le="{bound}"}} {running}'
        yield f"{name}_sum{{{labels}}} {hist.total_s:.6f}"
        yield f"{name}_count{{{labels}}} {hist.n}"
    total = "stallbox_http_responses_total"
    yield f"# TYPE {total} counter"
    for (method, route, status), n in sorted(registry.responses.items()):
        yield (f'{total}{{method="{method}",route="{_label(route)}",'
               f'status="{status}"}} {n}')


def gauge(name: str, value: float | int | None, help_text: str,
          kind: str = "gauge", labels: str = "") -> list[str]:
    """Return one metric's HELP, TYPE and sample lines (nothing when unknown)."""
    if value is None:
        return []
    sample = f"{name}{{{labels}}}" if labels else name
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            f"{sample} {value}"]
