"""`dutyledger events tail`: the latest events of the log, optionally following new ones."""

from __future__ import annotations

import time

import typer

from api.cli.common import DatabaseUrlOption, open_ledger
from api.cli.render import print_notifications

app = typer.Typer(help="Read the event log.", no_args_is_help=True)


@app.command("tail")
def tail(
    lines: int = typer.Option(20, "-n", "--lines", min=1, max=10_000, help="How many of the latest events."),
    follow: bool = typer.Option(
        False, "-f", "--follow", help="Keep printing new events as they are recorded."
    ),
    interval: float = typer.Option(0.5, min=0.05, help="Seconds between polls when following."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Print the latest events: position, record time, type, aggregate:version, actor, narrative."""
    with open_ledger(database_url) as ledger:
        last = ledger.recorder.max_notification_id() or 0
        start = max(last - lines, 0)
        while True:
            page = ledger.recorder.select_notifications(start=start, limit=1000, inclusive_of_start=False)
            print_notifications(ledger, page)
            if page:
                start = page[-1].id
            if not follow:
                return
            if len(page) < 1000:
                time.sleep(interval)
