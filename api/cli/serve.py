"""`dutyledger serve`: run the HTTP server (uvicorn)."""

from __future__ import annotations

import typer
import uvicorn

from api.settings import get_settings


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default DUTYLEDGER_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default DUTYLEDGER_PORT or 8000)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Store to serve."),
) -> None:
    """Serve the ledger over HTTP until interrupted."""
    settings = get_settings()
    if database_url:
        settings.database_url = database_url
    from api.app import create_app

    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)
