"""`dutyledger projections status|run|rebuild|digest`: operate the views built from the log."""

from __future__ import annotations

import signal
import threading

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from api.cli.common import DatabaseUrlOption, ViewsUrlOption, open_ledger, view_store
from domain.ledger import Ledger
from projections import VIEWS, build_views
from projections.digest import digest
from projections.rebuild import Progress as RebuildProgress
from projections.rebuild import ensure_current, rebuild_together
from projections.runner import Runner
from projections.shares import MAX_SHARES, PARALLEL_FROM
from projections.tracking import ensure_schema, tracks
from projections.view import View

app = typer.Typer(help="Operate the views (read models) built from the event log.", no_args_is_help=True)

ViewNames = typer.Argument(
    None, help=f"Views to act on (default: all): {', '.join(VIEWS)}.", show_default=False
)


@app.command("status")
def status(database_url: str | None = DatabaseUrlOption, views_url: str | None = ViewsUrlOption) -> None:
    """Each view's generation, schema, position and lag behind the log."""
    with open_ledger(database_url) as ledger:
        end = ledger.recorder.max_notification_id() or 0
        connection = view_store(ledger, views_url).connect()
        ensure_schema(connection)
        typer.echo(f"log position {end}")
        for view in build_views(ledger):
            generations = tracks(connection, view.name)
            track = next((t for t in generations if t.live), None)
            if track is None:
                typer.echo(f"{view.name:<22} not built yet (lag {end})")
            else:
                schema = "current" if track.schema_version == view.schema_version else "STALE: rebuild"
                typer.echo(
                    f"{view.name:<22} generation {track.generation}  schema {schema:<14} "
                    f"position {track.position}  lag {max(end - track.position, 0)}"
                )
            for other in (t for t in generations if not t.live):
                typer.echo(
                    f"{'':<22} also generation {other.generation} at position {other.position}, not live: "
                    "a rebuild under way, or one that failed (the view's next swap drops it)"
                )
        connection.close()


@app.command("run")
def run(
    names: list[str] | None = ViewNames,
    poll: float = typer.Option(0.5, min=0.05, help="Seconds between looks at the log when idle."),
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
) -> None:
    """Follow the log and keep the views up to date until interrupted (several may run at once)."""
    with open_ledger(database_url) as ledger:
        views = _views(ledger, names)
        store = view_store(ledger, views_url)
        ensure_current(ledger, views, store)
        runner = Runner(ledger, views, store)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        typer.echo(
            f"following the log for {', '.join(v.name for v in views)} from position {runner.position}"
        )
        try:
            runner.run(stop, poll)
        except KeyboardInterrupt:
            pass
        finally:
            runner.close()
        typer.echo(f"stopped at position {runner.position}")


@app.command("rebuild")
def rebuild_views(
    names: list[str] | None = ViewNames,
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
    shares: int | None = typer.Option(
        None,
        "--shares",
        min=1,
        max=MAX_SHARES,
        help="Processes that build the views in parallel (default: one per core once the log "
        f"holds {PARALLEL_FROM:,} events).",
    ),
) -> None:
    """Rebuild views from the start of the log into fresh tables, then swap them in atomically."""
    with open_ledger(database_url) as ledger:
        store = view_store(ledger, views_url)
        views = _views(ledger, names)
        with Progress(
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>8.0f} events/s"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stage]}"),
        ) as bar:
            task = bar.add_task(
                "rebuild", total=ledger.recorder.max_notification_id() or 1, rate=0.0, stage="starting"
            )

            def report(progress: RebuildProgress) -> None:
                bar.update(task, completed=progress.done, total=max(progress.total, 1), rate=progress.rate)

            def stage(name: str) -> None:
                bar.update(task, stage=name)

            built = rebuild_together(ledger, views, store, report=report, shares=shares, stage=stage)
            stage("done")
        for name, track in built.items():
            typer.echo(f"{name}: generation {track.generation} live at position {track.position}")


@app.command("digest")
def digest_views(
    names: list[str] | None = ViewNames,
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
) -> None:
    """A deterministic hash of each view's content at the position it has applied."""
    with open_ledger(database_url) as ledger:
        connection = view_store(ledger, views_url).connect()
        ensure_schema(connection)
        for view in _views(ledger, names):
            found = digest(connection, view)
            typer.echo(
                f"{found.view:<22} position {found.position:<10} rows {found.rows:<8} sha256 {found.sha256}"
            )
        connection.close()


def _views(ledger: Ledger, names: list[str] | None) -> list[View]:
    try:
        return build_views(ledger, names)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from None
