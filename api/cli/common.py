"""What the CLI commands share: opening the ledger named by the settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import typer

from api.settings import get_settings
from domain.clock import Clock
from domain.ledger import Ledger
from domain.storage.url import BadDatabaseUrl, sqlite_file
from projections.store import ViewStore

DatabaseUrlOption = typer.Option(
    None,
    "--database-url",
    help="Store to use; defaults to DUTYLEDGER_DATABASE_URL, else sqlite:///./var/ledger.sqlite.",
    show_default=False,
)


@contextmanager
def open_ledger(
    database_url: str | None, clock: Clock | None = None, *, create: bool = False
) -> Iterator[Ledger]:
    """The ledger at `database_url` (or the configured one), closed afterwards.

    A SQLite file that is not there is refused unless `create` (`init`, `demo`): a mistyped
    path must not quietly answer "0 cases" from a new, empty ledger it made on the way."""
    url = database_url or get_settings().database_url
    file = sqlite_file(url)
    if file is not None and not create and not file.exists():
        raise BadDatabaseUrl(f"no ledger at {file}: `dutyledger init` creates one")
    ledger = Ledger(url, clock=clock)
    try:
        yield ledger
    finally:
        ledger.close()


def parse_id(text: str, what: str = "id") -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a {what} (a UUID)") from None


def view_store(ledger: Ledger, views_url: str | None = None) -> ViewStore:
    """The views' database: `--views-url`, else DUTYLEDGER_VIEWS_URL, else the ledger's own."""
    return ViewStore(views_url or get_settings().views_url or ledger.database_url)


ViewsUrlOption = typer.Option(
    None,
    "--views-url",
    help="Database holding the views; defaults to DUTYLEDGER_VIEWS_URL, else the ledger's own database.",
    show_default=False,
)
