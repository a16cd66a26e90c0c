"""The public log for integrators: pages by log index, NDJSON for bulk catch-up, one event, a live stream."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, TypeVar
from urllib.parse import urlencode
from uuid import UUID

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from api.access import Caller, feed_filter, feed_filter_now
from api.feed.envelope import BATCH_MEDIA, EVENT_MEDIA, NDJSON_MEDIA, Envelopes
from api.feed.log import MAX_PAGE, FeedFilter, Page, PublicLog
from api.feed.schemas import envelope_schema
from api.feed.signal import Bell
from api.keys import KeyStore
from api.problems import (
    MALFORMED_PATH,
    NOT_CAUGHT_UP,
    OUT_OF_SCOPE,
    UNSIGNED,
    VALIDATION_FAILED,
    ApiProblem,
    documented,
)
from api.reading import ViewReader
from api.routes.common import LOG_INDEX_MAX
from api.routes.ledger import InclusionProof, Nodes, inclusion_proof
from api.settings import Settings
from domain.errors import NotFound
from projections.merkle.checkpoints import CheckpointStore, StoredCheckpoint

router = APIRouter(tags=["events"], responses=MALFORMED_PATH)

MAX_BULK = 100_000
"""The most log indexes one NDJSON response covers."""
IMMUTABLE = "private, max-age=31536000, immutable"
SSE_MEDIA = "text/event-stream"
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.5
"""How often a stream looks at the log when nothing rings (events saved by another process)."""
RETRY_MILLISECONDS = 2000
STREAM_PAGE = 500
"""Events a stream reads at once: all a slow consumer can make the server hold for it."""

ERRORS = documented(
    {
        400: "A parameter or header could not be read (NUL characters)",
        401: "No valid API key",
        403: "This key does not read the event feed, or not this event",
        404: "No event has this log index yet",
        422: "A parameter is malformed",
        503: "The sequencer has not started yet (see Retry-After)",
    }
)


CLOUD_EVENT = {k: v for k, v in envelope_schema().items() if k not in ("$schema", "$id")}
"""The envelope's schema (`GET /schemas/cloudevent.json`), as the OpenAPI document's answers carry it."""
EVENT_PAGE = {
    "type": "object",
    "required": ["next", "complete", "links", "events"],
    "properties": {
        "next": {"type": "integer", "minimum": -1, "description": "Send as `after` for the next page."},
        "complete": {"type": "boolean", "description": "Whether the page is full: it never changes again."},
        "links": {"type": "object", "properties": {"next": {"type": "string", "format": "uri-reference"}}},
        "events": {"type": "array", "items": CLOUD_EVENT},
    },
}

KeyFilter = Annotated[FeedFilter, Depends(feed_filter)]
TypeFilter = Annotated[
    list[str],
    Query(
        alias="type",
        description="Only these event types (repeatable; `*` allowed: `cn.petition.case.*`).",
    ),
]
UnitFilter = Annotated[
    list[UUID],
    Query(
        alias="unit",
        description="Only events whose actor served in one of these units or below (repeatable).",
    ),
]
After = Annotated[
    int,
    Query(
        ge=-1,
        le=LOG_INDEX_MAX,
        description="The last log index already read; -1 (the default) starts at the beginning.",
    ),
]


def public_log(request: Request) -> PublicLog:
    """The sequenced log, once the sequencer has started."""
    reader: ViewReader = request.app.state.reader
    if not reader.built():
        raise ApiProblem(NOT_CAUGHT_UP, "the sequencer has not started yet", {"Retry-After": "5"})
    log: PublicLog = request.app.state.public_log
    return log


Log = Annotated[PublicLog, Depends(public_log)]


def chosen(key: FeedFilter, types: list[str], units: list[UUID]) -> FeedFilter:
    """The key's filter narrowed by the request's."""
    return key.narrowed(FeedFilter.of(types, units))


P = TypeVar("P")


class KeyWatch:
    """A long read's key (a bulk read, a live stream): what it may read, asked anew for each page
    it would send, as the webhook worker asks for each endpoint's (`api.access.feed_filter_now`).

    Only a page with something to send costs a look at the key: an idle stream costs nothing.
    If what the key may read changed (an administrator posted to an accused unit), the page is
    read again under the new filter; once the key no longer works (revoked, expired, its
    administrator no longer one), nothing more is read.
    """

    def __init__(
        self, request: Request, key_id: str, reading: FeedFilter, narrow: Callable[[FeedFilter], FeedFilter]
    ) -> None:
        self.keys: KeyStore = request.app.state.keys
        self.ledger = public_log(request).ledger
        self.key_id = key_id
        self.narrow = narrow
        """The request's own filter (and, for a bulk read, the pinning of what it withholds)."""
        self.asked = reading
        self.reading = narrow(reading)

    def read(self, page: Callable[[FeedFilter], P], has_events: Callable[[P], bool]) -> P | None:
        """The next page as the key may read it now; None once the key no longer works."""
        while True:
            found = page(self.reading)
            if not has_events(found):
                return found
            now = feed_filter_now(self.keys, self.ledger, self.key_id)
            if now is None:
                return None
            if now == self.asked:
                return found
            self.asked, self.reading = now, self.narrow(now)


def _link(request: Request, after: int, limit: int) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "limit")]
    return f"{request.url.path}?{urlencode([('after', after), ('limit', limit), *query])}"


@router.get(
    "/events",
    summary="Read the log after a log index, in order.",
    responses={
        200: {
            "description": "A page of CloudEvents, in log order",
            "content": {
                "application/json": {"schema": EVENT_PAGE},
                BATCH_MEDIA: {"schema": {"type": "array", "items": CLOUD_EVENT}},
                NDJSON_MEDIA: {},
            },
        },
        304: {"description": "The page has not changed since the ETag sent in If-None-Match"},
        **ERRORS,
    },
)
def read_events(
    request: Request,
    log: Log,
    key: KeyFilter,
    caller: Caller,
    types: TypeFilter = [],  # noqa: B006 - FastAPI copies list defaults per request
    units: UnitFilter = [],  # noqa: B006
    after: After = -1,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_BULK, description="At most 1000 events a page; NDJSON: up to 100,000 indexes."),
    ] = 100,
    accept: Annotated[str, Header()] = "application/json",
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Events after `after`: `next` is the cursor to send as `after` next time; complete pages never change.

    `Accept: application/cloudevents-batch+json` answers a bare CloudEvents batch (the cursor
    is then in the `Link` header); `application/x-ndjson` streams one CloudEvent a line for
    bulk catch-up, covering the log indexes `after+1 … after+limit` that exist.
    """
    wanted = chosen(key, types, units)
    if NDJSON_MEDIA in accept:
        watch = KeyWatch(request, caller.key_id, key, lambda now: log.pin(chosen(now, types, units)))
        return _bulk(request, log, watch, after, limit)
    if limit > MAX_PAGE:
        raise ApiProblem(VALIDATION_FAILED, f"a page holds at most {MAX_PAGE} events (NDJSON: {MAX_BULK})")
    page = log.encoded(after, limit, wanted, request.app.state.envelopes)
    events = b",".join(page.lines)
    next_link = _link(request, page.next, limit)
    if BATCH_MEDIA in accept:
        body, media = b"[" + events + b"]", BATCH_MEDIA
    else:
        head = orjson.dumps({"next": page.next, "complete": page.complete, "links": {"next": next_link}})
        body, media = head[:-1] + b',"events":[' + events + b"]}", "application/json"
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": tag,
        "Cache-Control": IMMUTABLE if page.complete and wanted.stable else "no-cache",
        "Vary": "Accept, Authorization",
        "Link": f'<{next_link}>; rel="next"',
        "Next-After": str(page.next),
        "Log-Length": str(page.end),
    }
    if if_none_match is not None and tag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media, headers=headers)


def _bulk(request: Request, log: PublicLog, watch: KeyWatch, after: int, limit: int) -> Response:
    """NDJSON over the log indexes `after+1 … after+limit` that exist, a page at a time as read
    (each page as the key may read it then: `KeyWatch`; a key that stops working ends the body)."""
    until = max(min(after + limit, log.length(watch.reading) - 1), after)
    envelopes: Envelopes = request.app.state.envelopes

    def lines() -> Iterator[bytes]:
        cursor = after
        while cursor < until:
            page = watch.read(
                lambda wanted: log.encoded(cursor, MAX_PAGE, wanted, envelopes, until=until),  # noqa: B023
                lambda page: bool(page.lines),
            )
            if page is None:
                return
            if page.lines:
                yield b"\n".join(page.lines) + b"\n"
            if page.next <= cursor:  # what this reader may be shown ends short of `until` for now
                return
            cursor = page.next

    headers = {"Next-After": str(until), "Link": f'<{_link(request, until, limit)}>; rel="next"'}
    return StreamingResponse(lines(), media_type=NDJSON_MEDIA, headers=headers)


@router.get(
    "/events/stream",
    summary="Follow the log live, as Server-Sent Events.",
    response_class=StreamingResponse,
    responses={200: {"description": "An endless text/event-stream", "content": {SSE_MEDIA: {}}}, **ERRORS},
)
async def stream_events(
    request: Request,
    key: KeyFilter,
    caller: Caller,
    types: TypeFilter = [],  # noqa: B006
    units: UnitFilter = [],  # noqa: B006
    after: After = -1,
    last_event_id: Annotated[
        str | None, Header(description="The `id:` of the last event received: resume right after it.")
    ] = None,
) -> StreamingResponse:
    """Every event after `after` (or after `Last-Event-ID`, which wins), then each new one as it is sequenced.

    Each message's `id:` is its log index and its `data:` one CloudEvent (JSON). Comments
    keep the connection alive every 15 s. The server holds at most one page for a consumer:
    a slow one is simply read for when it is ready, from the log. What the key may read is asked
    anew for every page it sends (`KeyWatch`), and the stream ends once the key no longer works
    (revoked, expired, or its administrator no longer serving as one); a reconnection is then
    refused.
    """
    log = public_log(request)
    watch = KeyWatch(request, caller.key_id, key, lambda now: chosen(now, types, units))
    cursor = _resume(last_event_id, after)

    def next_page() -> Page | None:
        return watch.read(
            lambda wanted: log.page(cursor, STREAM_PAGE, wanted), lambda page: bool(page.events)
        )

    envelopes: Envelopes = request.app.state.envelopes
    bell: Bell = request.app.state.bell
    loop = asyncio.get_running_loop()

    async def messages() -> AsyncIterator[bytes]:
        nonlocal cursor
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        quiet_since = loop.time()
        while True:
            ticket = bell.ticket()
            page = await to_thread.run_sync(next_page)
            if page is None:
                return
            if page.events:
                yield b"".join(
                    b"id: %d\ndata: %s\n\n" % (event.index, envelopes.encode(event)) for event in page.events
                )
                quiet_since = loop.time()
            cursor = page.next
            if page.events and page.complete:
                continue
            if loop.time() - quiet_since >= HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                quiet_since = loop.time()
            await bell.wait(ticket, POLL_SECONDS)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type=SSE_MEDIA, headers=headers)


def _resume(last_event_id: str | None, after: int) -> int:
    if last_event_id is None or not last_event_id.strip():
        return after
    try:
        resumed = int(last_event_id.strip())
    except ValueError:
        raise ApiProblem(VALIDATION_FAILED, "Last-Event-ID must be a log index this stream sent") from None
    if not -1 <= resumed <= LOG_INDEX_MAX:
        raise ApiProblem(VALIDATION_FAILED, "Last-Event-ID must be a log index this stream sent")
    return resumed


@router.get(
    "/events/{index}",
    summary="Read one event by its log index.",
    responses={
        200: {"description": "One CloudEvent", "content": {EVENT_MEDIA: {"schema": CLOUD_EVENT}}},
        **ERRORS,
    },
)
def read_event(
    request: Request,
    log: Log,
    key: KeyFilter,
    index: Annotated[int, Path(ge=0, le=LOG_INDEX_MAX, description="The event's log index.")],
) -> Response:
    """One event as a CloudEvent (`application/cloudevents+json`); it never changes."""
    event = log.at(index)
    if event is None:
        raise NotFound(f"no event has log index {index} yet (the log holds {log.length()})", kind="Event")
    if not log.lets_through(event, key):
        raise ApiProblem(OUT_OF_SCOPE, "this key's filters do not let this event through", index=index)
    envelopes: Envelopes = request.app.state.envelopes
    cache = IMMUTABLE if key.stable else "private, no-cache"
    return Response(envelopes.encode(event), media_type=EVENT_MEDIA, headers={"Cache-Control": cache})


@router.get(
    "/events/{index}/proof",
    response_model=InclusionProof,
    summary="Prove one event is in the log, against the latest signed checkpoint.",
    responses=documented(
        {
            401: "No valid API key",
            403: "This key does not read the event feed, or not this event",
            404: "No event has this log index yet",
            422: "A parameter is malformed",
            503: "No signed checkpoint covers this event yet (see Retry-After), or the server signs none",
        }
    ),
)
def event_proof(
    request: Request,
    log: Log,
    key: KeyFilter,
    tree: Nodes,
    index: Annotated[int, Path(ge=0, le=LOG_INDEX_MAX, description="The event's log index.")],
) -> InclusionProof:
    """The event's leaf bytes, leaf hash and audit path in the tree of the latest signed checkpoint,
    with that checkpoint's signed note: everything needed to verify it offline (docs/verify.md).

    The same keys read it as read the event itself (`GET /events/{index}`).
    """
    event = log.at(index)
    if event is None:
        raise NotFound(f"no event has log index {index} yet (the log holds {log.length()})", kind="Event")
    if not log.lets_through(event, key):
        raise ApiProblem(OUT_OF_SCOPE, "this key's filters do not let this event through", index=index)
    signed = covering_checkpoint(request, index)
    return inclusion_proof(request, tree, index, signed.checkpoint.size, readable=event)


def covering_checkpoint(request: Request, last_index: int) -> StoredCheckpoint:
    """The latest signed checkpoint, if its tree holds the log index `last_index`; 503 if it does not yet.

    503, not 409: nothing in the request is wrong, and the same request succeeds once the
    checkpointer signs the grown log (at most `checkpoint_every_seconds` later), so the answer
    is the one the views give while they catch up, with a Retry-After. A server without a
    signing key never will: its answer is a type of its own (`no-signing-key`), with no
    Retry-After, so that a client branching on `type` stops rather than waits.
    """
    store: CheckpointStore = request.app.state.checkpoints
    latest = store.latest()
    if latest is not None and latest.checkpoint.size > last_index:
        return latest
    size = 0 if latest is None else latest.checkpoint.size
    signed = "no checkpoint has been signed yet" if latest is None else f"the latest covers {size} events"
    if request.app.state.signer is None:
        raise ApiProblem(
            UNSIGNED,
            f"no signed checkpoint covers log index {last_index} ({signed}), and this server has no "
            "signing key to sign one (`dutyledger init` creates it)",
            log_index=last_index,
            checkpoint_tree_size=size,
        )
    settings: Settings = request.app.state.settings
    wait = max(1, math.ceil(min(settings.checkpoint_every_seconds, 60.0)))
    raise ApiProblem(
        NOT_CAUGHT_UP,
        f"no signed checkpoint covers log index {last_index} yet ({signed}); one is signed within "
        f"{settings.checkpoint_every_seconds:g} s of the log growing: retry then",
        {"Retry-After": str(wait)},
        log_index=last_index,
        checkpoint_tree_size=size,
    )
