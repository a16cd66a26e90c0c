"""Limits on what a caller can send: body size and media type, and a request rate per key."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from fastapi import FastAPI, Request, Response

from api.keys import Principal
from api.problems import (
    MALFORMED_REQUEST,
    RATE_LIMITED,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiProblem,
    problem_response,
)

Next = Callable[[Request], Awaitable[Response]]


def install_body_limits(app: FastAPI, max_bytes: int) -> None:
    """Refuse a body over `max_bytes` (413), a body that is not JSON (415), and NUL characters anywhere
    (400: PostgreSQL cannot store them, so neither backend takes them), before any route runs."""

    @app.middleware("http")
    async def body_limits(request: Request, call_next: Next) -> Response:
        if "\x00" in unquote(request.url.query) or "%00" in request.url.path:
            return problem_response(request, MALFORMED_REQUEST, "NUL characters are not accepted")
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                return problem_response(request, TOO_LARGE, f"the body may hold at most {max_bytes} bytes")
            body = await request.body()  # cached by Starlette for the route
            if len(body) > max_bytes:
                return problem_response(request, TOO_LARGE, f"the body may hold at most {max_bytes} bytes")
            if b"\\u0000" in body or b"\x00" in body:
                return problem_response(request, MALFORMED_REQUEST, "NUL characters are not accepted")
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body and not (media == "application/json" or media.endswith("+json")):
                return problem_response(
                    request,
                    UNSUPPORTED_MEDIA_TYPE,
                    f"send the body as application/json, not {media or 'untyped'}",
                )
        return await call_next(request)


class RateLimiter:
    """A token bucket per key: `rate` requests a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def admit(self, principal: Principal) -> None:
        """Take a token for this key, or refuse with 429 and how long to wait."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(principal.key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens < 1:
                self._buckets[principal.key_id] = (tokens, now)
                wait = max(1, int((1 - tokens) / self.rate + 0.999))
                raise ApiProblem(
                    RATE_LIMITED,
                    f"this key may make {self.rate:g} requests a second (bursts of {self.burst})",
                    {"Retry-After": str(wait)},
                )
            self._buckets[principal.key_id] = (tokens - 1, now)
