"""The FastAPI application: commands as the authenticated cadre, queries within the caller's scope."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from pydantic import BaseModel

from api import commands, examples, problems
from api.access import ApiKeys
from api.feed.envelope import Envelopes
from api.feed.log import PublicLog
from api.feed.signal import Bell
from api.head import HeadAsGet
from api.identity import IdentityStore
from api.keys import KeyStore
from api.limits import RateLimiter, RequestLimits
from api.reading import ViewReader
from api.routes import (
    cadres,
    cases,
    events,
    keys,
    petitioners,
    records,
    schemas,
    units,
    webhooks,
)
from api.routes import (
    ledger as integrity,
)
from api.settings import Settings, get_settings
from api.webhooks.store import WebhookStore
from api.webhooks.worker import Worker
from domain.ledger import Ledger
from domain.storage.url import redacted
from projections.embedded import EmbeddedProjections
from projections.merkle.checkpoints import Checkpointer, CheckpointStore, read_key_file
from projections.merkle.note import Signer
from projections.store import ViewStore

log = logging.getLogger(__name__)

DESCRIPTION = """\
Every action a cadre takes on a petition is recorded as an immutable event, with the cadre
who did it (the holder of the API key: there is no actor field to fill in), the unit they
served in then, when it happened and when it was recorded, and why.

- **Authentication**: `Authorization: Bearer <API key>` (`dutyledger keys create`).
- **Commands** (`POST`): send `Idempotency-Key` to make a retry safe; `If-Match: "<version>"`
  to act only on the version you read. The answer gives the new version and the log position.
- **Queries** (`GET`): pass a command's `position` as `min_position` to read your own write.
- **Errors**: RFC 9457 `application/problem+json`; branch on `type` (catalogue: `GET /problems`).
"""


class Health(BaseModel):
    """Whether the ledger's store answers, and how far its log goes."""

    status: str
    store: str
    position: int


class ProblemTypeInfo(BaseModel):
    """One problem type the API can answer with."""

    type: str
    status: int
    title: str


def checkpointing(
    settings: Settings, views: ViewStore, checkpoints: CheckpointStore
) -> tuple[Signer | None, Checkpointer | None]:
    """The signing key and a running checkpointer, or neither (logged) if the key file is missing."""
    path = Path(settings.signing_key_path)
    if not path.exists():
        log.warning("no signing key at %s: no checkpoints will be signed (`dutyledger init` makes one)", path)
        return None, None
    signer = read_key_file(path)
    every = (settings.checkpoint_every_events, settings.checkpoint_every_seconds)
    return signer, Checkpointer(checkpoints, views, signer, *every).start()


def create_app(settings: Settings | None = None, ledger: Ledger | None = None) -> FastAPI:
    """The API over the configured ledger (or the one given, which the caller then owns)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = ledger is None
        app.state.ledger = the_ledger = ledger or Ledger(settings.database_url)
        app.state.command_slots = CapacityLimiter(settings.command_threads)  # see `api.lean`
        store = ViewStore(settings.views_url or settings.database_url)
        embedded = (
            EmbeddedProjections(the_ledger, store=store).start() if settings.embedded_projections else None
        )
        app.state.keys = KeyStore(settings.database_url)
        identities = settings.identity_url or settings.database_url
        app.state.identities = IdentityStore(identities)
        app.state.authenticator = ApiKeys(app.state.keys)
        # Reads run on the event loop only when every store an inline read touches is a SQLite file.
        read_from = (the_ledger.database_url, store.database_url, identities)
        inline = all(ViewStore(url).dialect == "sqlite" for url in read_from)
        app.state.reader = ViewReader(store, embedded, inline=inline)
        app.state.public_log = PublicLog(the_ledger, app.state.reader)
        app.state.envelopes = Envelopes(the_ledger.mapper, settings.event_source, settings.public_url)
        app.state.bell = bell = Bell()
        if embedded is not None and embedded.runner is not None:
            embedded.runner.listeners.append(bell.ring)
        app.state.checkpoints = CheckpointStore(settings.database_url)
        app.state.signer, checkpointer = checkpointing(settings, store, app.state.checkpoints)
        if checkpointer is not None and embedded is not None and embedded.runner is not None:
            embedded.runner.listeners.append(checkpointer.wake)
        app.state.webhooks = hooks = WebhookStore.configured(settings, settings.database_url)
        app.state.webhook_worker = worker = (
            Worker.configured(
                settings, hooks, app.state.public_log, app.state.envelopes, app.state.keys
            ).start()
            if settings.webhooks_embedded
            else None
        )
        if worker is not None and embedded is not None and embedded.runner is not None:
            embedded.runner.listeners.append(worker.wake)
        # What start-up built (the ledger's caches, the views' memory) lives as long as the
        # process: taken out of the cycle collector's full passes, which otherwise traverse it
        # again and again and hold every request up while they do (the Python docs' advice).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if worker is not None:
                worker.stop()
            app.state.webhooks.close()
            if checkpointer is not None:
                checkpointer.stop()
            app.state.checkpoints.close()
            app.state.reader.close()
            app.state.keys.close()
            app.state.identities.close()
            if embedded is not None:
                embedded.stop()
            if own:
                the_ledger.close()

    app = FastAPI(
        title="Duty Ledger",
        summary="An event-sourced accountability ledger for petition casework (信访).",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # `RequestLimits` answers any operation 400 for a NUL character in its path or query.
        responses=problems.MALFORMED_PATH,
    )
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    problems.install(app)
    app.add_middleware(RequestLimits, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadAsGet)
    # Routes are matched in order: the most read come first (measured with wrk: GET /cases/{id}
    # 1,285 -> 1,490/s). No request matches routes of two of these routers, so order changes no answer.
    routers = [cases.router, cadres.router, units.router, commands.router()]
    routers += [
        module.router for module in (petitioners, records, keys, events, schemas, webhooks, integrity)
    ]
    for router in routers:
        # Listed flat, not `include_router`: FastAPI 0.165 keeps an included router as a branch
        # that tries each of its routes twice per request, through several layers (measured: 16%
        # of a command's CPU, against 3% flat). Each router carries its own prefix, tags and
        # responses already, so the routes and the OpenAPI document are the same.
        app.router.routes.extend(router.routes)

    def openapi() -> dict[str, Any]:
        """FastAPI's document of the routes, with an example answer for each operation (`api.examples`)."""
        if app.openapi_schema is None:
            app.openapi_schema = examples.add_examples(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(
        "/health", response_model=Health, tags=["service"], summary="Check that the ledger's store answers."
    )
    def health(request: Request) -> Health:
        """Report the store in use and the position of the latest recorded event (no key needed)."""
        the_ledger: Ledger = request.app.state.ledger
        return Health(
            status="ok",
            store=redacted(settings.database_url),
            position=the_ledger.recorder.max_notification_id() or 0,
        )

    @app.get("/health/live", tags=["service"], summary="Check that the process answers (no store access).")
    async def live() -> dict[str, str]:
        """Liveness for a process supervisor; also the bare endpoint the HTTP benchmark compares with.

        On the event loop, so it answers even while every worker thread is busy with commands.
        """
        return {"status": "ok"}

    @app.get(
        "/problems",
        response_model=list[ProblemTypeInfo],
        tags=["service"],
        summary="List every problem type.",
    )
    def problem_types() -> list[ProblemTypeInfo]:
        """Every `type` an error can carry, with its HTTP status and title (no key needed)."""
        return [
            ProblemTypeInfo(type=problems.type_uri(p.code), status=p.status, title=p.title)
            for p in problems.catalogue()
        ]

    return app
