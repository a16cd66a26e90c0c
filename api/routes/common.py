"""What the read routes share: the views' connection, read-your-writes, and scope checks."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Query, Request

from api.access import Reader, ReadScope
from api.problems import MALFORMED_PATH, NOT_CAUGHT_UP, VALIDATION_FAILED, ApiProblem, documented
from api.reading import ViewReader
from api.settings import Settings
from projections.store import ViewConnection

P = ParamSpec("P")
T = TypeVar("T")

LOG_INDEX_MAX = 2**53 - 1
"""The largest log index or position a caller may name: JSON's safe integer range, which no log
reaches, and within SQL's 64-bit integers however a query adds to it."""

MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=LOG_INDEX_MAX,
        description="Read your own writes: wait (bounded) until the views have applied this log position, "
        "as a command's answer gave it; 503 if they do not in time.",
    ),
]


async def views(request: Request, min_position: MinPosition = None) -> AsyncIterator[ViewConnection]:
    """A connection to the views, once they have reached `min_position`."""
    await views_ready(request, min_position)
    reader: ViewReader = request.app.state.reader
    with reader.connection() as connection:
        yield connection


async def views_ready(request: Request, min_position: MinPosition = None) -> None:
    """Refuse the read unless the views are built and have reached `min_position` (waiting, bounded)."""
    reader: ViewReader = request.app.state.reader
    settings: Settings = request.app.state.settings
    if min_position is not None and min_position > await reader.run(_log_end, request):
        raise ApiProblem(
            VALIDATION_FAILED,
            f"position {min_position} is beyond the end of the log: no command answered with it",
            min_position=min_position,
        )
    if not await reader.is_built():
        raise ApiProblem(
            NOT_CAUGHT_UP,
            "the views are not built yet: start `dutyledger projections run` or embedded projections",
            {"Retry-After": "5"},
        )
    if min_position is not None and not await reader.caught_up(min_position, settings.read_wait_seconds):
        raise ApiProblem(
            NOT_CAUGHT_UP,
            f"the views have not reached position {min_position} within {settings.read_wait_seconds:g} s",
            {"Retry-After": "1"},
            min_position=min_position,
        )


def _log_end(request: Request) -> int:
    """The last position of the ledger's log (0 while it is empty)."""
    return request.app.state.ledger.recorder.max_notification_id() or 0


Views = Annotated[ViewConnection, Depends(views)]
ViewsReady = Annotated[None, Depends(views_ready)]


def read_route(endpoint: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Serve a route that only reads through `ViewReader.run`: inline on SQLite, else on a worker thread.

    FastAPI sees (and documents) the endpoint's own parameters, which must include `request`.
    Only short reads of the views belong here. A route that records anything (an identity read
    records `IdentityAccessed`) stays a plain function, on a worker thread: its commit waits for
    the disk; so do routes that replay a case from the ledger (as of an instant, responsibility)
    or wait on the checkpoints' lock (a timeline with proofs).
    """
    signature = inspect.signature(endpoint)
    if "request" not in signature.parameters:
        raise TypeError(f"{endpoint.__name__} must take the request to be a read route")
    connected = "views" in signature.parameters

    @functools.wraps(endpoint)
    async def served(*args: P.args, **kwargs: P.kwargs) -> T:
        request = kwargs["request"]
        assert isinstance(request, Request)
        reader: ViewReader = request.app.state.reader
        if not connected:
            return await reader.run(endpoint, *args, **kwargs)
        with reader.connection() as connection:

            def in_snapshot(*args: P.args, **kwargs: P.kwargs) -> T:
                """Every query of the answer sees the views at one position (never half a runner's
                commit before and half after); on SQLite the read lock is taken once, not per query."""
                with connection.snapshot():
                    return endpoint(*args, **kwargs)

            kwargs["views"] = connection
            return await reader.run(in_snapshot, *args, **kwargs)

    if connected:
        # FastAPI resolves `views` as the plain check `views_ready`, and the connection is handed
        # over here: a generator dependency costs an exit stack per request (measured ~5% of GET /cases/{id}).
        ready = signature.parameters["views"].replace(annotation=ViewsReady)
        served.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[ready if p.name == "views" else p for p in signature.parameters.values()]
        )
    return served


READ_ERRORS = MALFORMED_PATH | documented(
    {
        401: "No valid API key",
        403: "Outside what this key may read",
        404: "No such record",
        422: "A parameter is malformed",
        503: "The views have not reached min_position yet (see Retry-After)",
    }
)


def aware(moment: datetime) -> datetime:
    """An instant a caller gave, refused (422) without a zone offset: it would mean the server's zone."""
    if moment.tzinfo is None:
        raise ApiProblem(VALIDATION_FAILED, "an instant needs a zone offset, as 2026-11-02T09:30:00+08:00")
    return moment


__all__ = [
    "LOG_INDEX_MAX",
    "READ_ERRORS",
    "MinPosition",
    "ReadScope",
    "Reader",
    "Views",
    "aware",
    "read_route",
]
