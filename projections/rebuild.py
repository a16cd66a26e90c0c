"""Rebuild a view into fresh tables while readers keep the old ones, then swap in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from projections.runner import Runner
from projections.store import ViewStore
from projections.tracking import TRACKING, Track, create_generation, ensure_schema, point_readers_at, tracks
from projections.view import View

if TYPE_CHECKING:
    from domain.ledger import Ledger


@dataclass(frozen=True)
class Progress:
    """How far a rebuild has got: events read so far, of how many, at what rate."""

    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    @property
    def eta(self) -> float:
        return (self.total - self.done) / self.rate if self.rate else float("inf")


def rebuild(
    ledger: Ledger,
    view: View,
    store: ViewStore | None = None,
    report: Callable[[Progress], None] | None = None,
) -> Track:
    """Build the view from the start of the log into a new generation, swap it in, drop the old one.

    Readers query the old generation until the swap; runners following the view notice the
    swap at their next batch and carry on with the new generation from its position.
    """
    store = store or ViewStore(ledger.database_url)
    fresh = new_generation(view, store)
    runner = Runner(ledger, [view], store, tracks={view.name: fresh})
    try:
        total = ledger.recorder.max_notification_id() or 0
        started = time.perf_counter()
        while runner.step():
            if report:
                report(Progress(runner.position, total, time.perf_counter() - started))
        built = runner.tracks[view.name]
    finally:
        runner.close()
    swap_in(view, built, store)
    return Track(built.view, built.generation, built.schema_version, built.position, live=True)


def new_generation(view: View, store: ViewStore) -> Track:
    """Empty tables for the next generation of the view, not yet seen by readers."""
    connection = store.connect()
    try:
        ensure_schema(connection)
        generation = max((t.generation for t in tracks(connection, view.name)), default=0) + 1
        return create_generation(connection, view, generation, live=False)
    finally:
        connection.close()


def swap_in(view: View, track: Track, store: ViewStore) -> None:
    """Make `track`'s generation the live one, atomically, and drop every other generation."""
    connection = store.connect()
    try:
        with connection.transaction():
            others = [t for t in tracks(connection, view.name) if t.generation != track.generation]
            connection.execute(f"UPDATE {TRACKING} SET live = 0 WHERE view = ? AND live = 1", (view.name,))
            connection.execute(
                f"UPDATE {TRACKING} SET live = 1 WHERE view = ? AND generation = ?",
                (view.name, track.generation),
            )
            point_readers_at(connection, view, track.generation)
            for old in others:
                for table in view.tables:
                    connection.execute(f"DROP TABLE IF EXISTS {table.physical(old.generation)}")
                connection.execute(
                    f"DELETE FROM {TRACKING} WHERE view = ? AND generation = ?", (view.name, old.generation)
                )
    finally:
        connection.close()


def ensure_current(
    ledger: Ledger, views: list[View], store: ViewStore, report: Callable[[Progress], None] | None = None
) -> list[str]:
    """Rebuild every view whose live generation was built by an older schema; returns their names."""
    connection = store.connect()
    try:
        ensure_schema(connection)
        stale = [
            view
            for view in views
            if any(t.live and t.schema_version != view.schema_version for t in tracks(connection, view.name))
        ]
    finally:
        connection.close()
    for view in stale:
        rebuild(ledger, view, store, report)
    return [view.name for view in stale]
