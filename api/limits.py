"""Limits on what a caller can send: body size and media type, and a request rate per key."""

from __future__ import annotations

import threading
import time

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.keys import Principal
from api.problems import (
    MALFORMED_REQUEST,
    RATE_LIMITED,
    TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiProblem,
    ProblemType,
    problem_response,
)


class RequestLimits:
    """Refuse a body over `max_bytes` (413), a body that is not JSON (415), and NUL characters anywhere
    (400: PostgreSQL cannot store them, so neither backend takes them), before any route runs.

    Plain ASGI rather than `@app.middleware`: Starlette's BaseHTTPMiddleware runs every request
    through extra tasks and streams, which measured as most of the cost of a bare endpoint.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]:
            await self._refuse(scope, receive, send, MALFORMED_REQUEST, "NUL characters are not accepted")
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = await self._body(receive)
        if body is None:
            await self._refuse(
                scope, receive, send, TOO_LARGE, f"the body may hold at most {self.max_bytes} bytes"
            )
            return
        if b"\\u0000" in body or b"\x00" in body:
            await self._refuse(scope, receive, send, MALFORMED_REQUEST, "NUL characters are not accepted")
            return
        media = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
        if body and not (media == "application/json" or media.endswith("+json")):
            detail = f"send the body as application/json, not {media or 'untyped'}"
            await self._refuse(scope, receive, send, UNSUPPORTED_MEDIA_TYPE, detail)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, kind: ProblemType, detail: str) -> None:
        await problem_response(Request(scope), kind, detail)(scope, receive, send)


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
