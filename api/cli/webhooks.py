"""`dutyledger webhooks run`: deliver webhooks from a process of its own."""

from __future__ import annotations

import signal
import threading

import typer

from api.cli.common import DatabaseUrlOption, ViewsUrlOption, open_ledger, view_store
from api.feed.envelope import Envelopes
from api.feed.log import PublicLog
from api.keys import KeyStore
from api.reading import ViewReader
from api.settings import get_settings
from api.webhooks.store import WebhookStore
from api.webhooks.worker import Worker

app = typer.Typer(help="Deliver the public log to registered webhook endpoints.", no_args_is_help=True)


@app.command("run")
def run(
    threads: int = typer.Option(16, min=1, max=256, help="Endpoints delivered to at once."),
    poll: float = typer.Option(1.0, min=0.05, help="Seconds between looks at the log and the back-offs."),
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
) -> None:
    """Deliver until interrupted (several may run; the servers' own delivery can be turned off with
    DUTYLEDGER_WEBHOOKS_EMBEDDED=false). The sequencer must run somewhere: a server, or
    `dutyledger projections run`."""
    settings = get_settings()
    with open_ledger(database_url) as ledger:
        reader = ViewReader(view_store(ledger, views_url))
        keys = KeyStore(ledger.database_url)
        store = WebhookStore.configured(settings, ledger.database_url)
        worker = Worker.configured(
            settings,
            store,
            PublicLog(ledger, reader),
            Envelopes(ledger.mapper, settings.event_source, settings.public_url),
            keys,
            threads=threads,
            poll=poll,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        typer.echo(f"delivering webhooks as {worker.name}")
        worker.start()
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop()
            store.close()
            keys.close()
            reader.close()
        typer.echo("stopped")
