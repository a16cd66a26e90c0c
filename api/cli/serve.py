"""`dutyledger serve`: run the HTTP server (uvicorn)."""

from __future__ import annotations

import os

import typer
import uvicorn

from api.settings import get_settings
from domain.storage.url import store_env

GRACE_SECONDS = 5
"""On SIGTERM, how long open requests (live streams never end by themselves) may run before they are cut."""


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default DUTYLEDGER_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default DUTYLEDGER_PORT or 8000)."),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes sharing the store (on SQLite, one applies the log to the views).",
    ),
    database_url: str | None = typer.Option(None, "--database-url", help="Store to serve."),
) -> None:
    """Serve the ledger over HTTP until interrupted (OpenAPI at /docs and /openapi.json)."""
    settings = get_settings()
    if database_url:
        settings.database_url = database_url
    bind = {
        "host": host or settings.host,
        "port": port or settings.port,
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    if workers == 1:
        from api.app import create_app

        uvicorn.run(create_app(settings), **bind)  # type: ignore[arg-type]
        return
    if "mode=memory" in store_env(settings.database_url).get("SQLITE_DBNAME", ""):
        raise typer.BadParameter(
            "several workers need a store they can share: a file or PostgreSQL, not memory",
            param_hint="--workers",
        )
    os.environ["DUTYLEDGER_DATABASE_URL"] = settings.database_url  # each worker reads its settings afresh
    uvicorn.run("api.app:create_app", factory=True, workers=workers, **bind)  # type: ignore[arg-type]
