"""The FastAPI application: for now the ledger's health and a summary (the full API is issue 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from api.settings import Settings, get_settings
from domain.ledger import Ledger
from domain.storage.url import redacted
from projections.embedded import EmbeddedProjections
from projections.store import ViewStore


class Health(BaseModel):
    """Whether the ledger's store answers, and how far its log goes."""

    status: str
    store: str
    position: int


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    ledger_holder: dict[str, Ledger] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger = ledger_holder["ledger"] = Ledger(settings.database_url)
        store = ViewStore(settings.views_url or settings.database_url)
        views = EmbeddedProjections(ledger, store=store).start() if settings.embedded_projections else None
        yield
        if views is not None:
            views.stop()
        ledger_holder.pop("ledger").close()

    app = FastAPI(
        title="Duty Ledger",
        summary="An event-sourced accountability ledger for petition casework (信访).",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.get("/health", response_model=Health, summary="Check that the ledger's store answers.")
    def health() -> Health:
        """Report the store in use and the position of the latest recorded event."""
        ledger = ledger_holder["ledger"]
        return Health(
            status="ok",
            store=redacted(settings.database_url),
            position=ledger.recorder.max_notification_id() or 0,
        )

    return app
