"""HEAD on the API's resources: the GET answer's status and headers, without its body (RFC 9110 §9.3.2).

FastAPI routes answer only the methods they name, so HEAD met 405 everywhere; integrators'
caches and link checkers ask HEAD. Plain ASGI (see `api.limits`): the request is served as
the GET it stands for, and the body is dropped on its way out.

Two GETs are not served for HEAD, and keep answering 405: the event stream (it never ends:
there is no whole answer to take the headers of) and the petitioner's identity (each read
is recorded as `IdentityAccessed`; a HEAD reads nothing, and must record nothing).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOT_FOR_HEAD = re.compile(r"^/events/stream/?$|^/cases/[^/]+/petitioner/?$")


class HeadAsGet:
    """Serve HEAD as GET and send the answer's start but none of its body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or NOT_FOR_HEAD.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)
