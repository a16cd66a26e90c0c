"""Rebuild a view into fresh tables while readers keep the old ones, then swap in one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.ledger import Ledger
from domain.storage.url import store_env
from projections import VIEWS, bulk
from projections.runner import Runner
from projections.shares import build_in_shares, default_shares
from projections.store import RebuildRunning, ViewConnection, ViewStore
from projections.tracking import TRACKING, Track, create_generation, ensure_schema, point_readers_at, tracks
from projections.view import View

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """How far a rebuild has got: events read so far, of how many, at what rate."""

    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


def rebuild(
    ledger: Ledger,
    view: View,
    store: ViewStore | None = None,
    report: Callable[[Progress], None] | None = None,
) -> Track:
    """Build the view from the start of the log into a new generation, swap it in, drop the old ones.

    Readers query the old generation until the swap; runners following the view notice the
    swap at their next batch and carry on with the new generation from its position.
    """
    return rebuild_together(ledger, [view], store, report)[view.name]


def rebuild_together(
    ledger: Ledger,
    views: Sequence[View],
    store: ViewStore | None = None,
    report: Callable[[Progress], None] | None = None,
    shares: int | None = None,
    stage: Callable[[str], None] | None = None,
) -> dict[str, Track]:
    """Rebuild several views in one pass over the log (each event read and decoded once).

    The log as it stands is built in `shares` parallel processes (default: one per core on a
    log large enough to pay for them), and the views that cannot be split in one more process
    beside them (see `projections.shares`); whatever is recorded meanwhile is then applied
    here, and the views are swapped in. `report` hears of every commit of the log's events;
    `stage` of each step as it begins (building, merging, catching up, swapping in a view,
    dropping its old generation), since after the last event a large rebuild still merges,
    indexes and drops for a while.
    """
    store = store or ViewStore(ledger.database_url)
    with store.rebuild_lock([view.name for view in views]):
        return _rebuild_locked(ledger, views, store, report, shares, stage or _silent)


def _silent(stage: str) -> None:
    """Hear of a rebuild's stages and say nothing."""


def _rebuild_locked(
    ledger: Ledger,
    views: Sequence[View],
    store: ViewStore,
    report: Callable[[Progress], None] | None,
    shares: int | None,
    stage: Callable[[str], None],
) -> dict[str, Track]:
    fresh = {view.name: new_generation(view, store) for view in views}
    total = ledger.recorder.max_notification_id() or 0
    started = time.perf_counter()

    def progress(done: int) -> None:
        if report:
            report(Progress(done, total, time.perf_counter() - started))

    if shares is None:
        shares = default_shares(total)
    if shares > 1 and not (any(view.shareable for view in views) and shareable(ledger, views)):
        shares = 1
    try:
        if shares > 1:
            stage(f"building in {shares} shares")
            fresh = build_in_shares(ledger, views, store, fresh, total, shares, progress, stage)
            stage("catching up")
        else:
            stage("building")
        runner = Runner(ledger, views, store, tracks=fresh)
        try:
            bulk.apply_all(runner, progress)
            built = dict(runner.tracks)
        finally:
            runner.close()
    except BaseException:
        try:
            discard(views, fresh, store)
        except Exception:  # the rebuild's own error says more (the store may be what failed)
            log.warning(
                "could not drop the tables of a failed rebuild; the next swap drops them", exc_info=True
            )
        raise
    for view in views:
        stage(f"swapping in {view.name}")
        swap_in(view, built[view.name], store)
    for view in views:  # every view is live before the drops, which take longer
        stage(f"dropping the old {view.name}")
        drop_others(view, built[view.name], store)
    return {
        name: Track(t.view, t.generation, t.schema_version, t.position, live=True)
        for name, t in built.items()
    }


def shareable(ledger: Ledger, views: Sequence[View]) -> bool:
    """Whether other processes can build these views: registered views, over a ledger they can open."""
    in_memory = "mode=memory" in store_env(ledger.database_url).get("SQLITE_DBNAME", "")
    return not in_memory and all(VIEWS.get(view.name) is type(view) for view in views)


def new_generation(view: View, store: ViewStore) -> Track:
    """Empty tables for the next generation of the view, not yet seen by readers."""
    connection = store.connect()
    try:
        ensure_schema(connection)
        return create_generation(connection, view, live=False)
    finally:
        connection.close()


def discard(views: Sequence[View], fresh: dict[str, Track], store: ViewStore) -> None:
    """Drop the tables of a failed rebuild's generations (never live): no disk held until the next swap.

    Their tracking rows stay, so their numbers are not reused; the next swap of each view drops them.
    """
    connection = store.connect()
    try:
        for view in views:
            drop_tables(connection, view, fresh[view.name].generation)
    finally:
        connection.close()


def drop_tables(connection: ViewConnection, view: View, generation: int, *, untrack: bool = False) -> None:
    """Drop the view's tables of one generation, those that exist, and with `untrack` its tracking row.

    On SQLite a table is taken apart first: each secondary index dropped on its own, then its rows
    deleted `bulk.CHUNK` at a time. A drop walks every page of what it drops while holding the
    file's one write lock, which the ledger's commands wait for: measured at 1M events, 1.0–2.6 s
    for a whole table (once 5.4 s), at most 0.34 s for an index or a chunk, for about the same
    total. A drop that fails half way leaves tables that are not live, which the next swap drops.
    """
    if connection.dialect == "sqlite":
        for table in view.tables:
            _take_apart(connection, table.physical(generation))
    with connection.schema_change():
        for table in view.tables:
            connection.execute(f"DROP TABLE IF EXISTS {table.physical(generation)}")
        if untrack:
            connection.execute(
                f"DELETE FROM {TRACKING} WHERE view = ? AND generation = ?", (view.name, generation)
            )


def _take_apart(connection: ViewConnection, table: str) -> None:
    """SQLite: drop the table's secondary indexes and delete its rows, in short transactions."""
    indexes = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
    )
    for (index,) in indexes:
        bulk.alone(connection, f"DROP INDEX IF EXISTS {index}")
    if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)):
        bulk.in_chunks(connection, table, f"DELETE FROM {table} WHERE rowid >= ? AND rowid < ?")


def swap_in(view: View, track: Track, store: ViewStore) -> None:
    """Index `track`'s generation and make it the live one atomically (`drop_others` then clears the rest)."""
    connection = store.connect()
    try:
        for table in view.tables:
            for statement in table.create_indexes(track.generation):
                _build_index(connection, statement)
            if store.dialect == "postgres":
                # Bulk-loaded tables have no column statistics until autovacuum comes by: the
                # planner then guessed one row per cadre and filtered thousands of facts through
                # the wrong index. Readers get the new tables with statistics from the start.
                connection.execute(f"ANALYZE {table.physical(track.generation)}")
        with connection.schema_change():
            connection.execute(f"UPDATE {TRACKING} SET live = 0 WHERE view = ? AND live = 1", (view.name,))
            connection.execute(
                f"UPDATE {TRACKING} SET live = 1 WHERE view = ? AND generation = ?",
                (view.name, track.generation),
            )
            point_readers_at(connection, view, track.generation)
    finally:
        connection.close()


def _build_index(connection: ViewConnection, statement: str) -> None:
    """Build one index: on SQLite as a transaction of its own, queued with the ledger's writers.

    A statement outside a transaction takes SQLite's write lock without meeting the ledger's
    commands in their queue (`domain.storage.writers`): a command then waits in SQLite's busy
    handler, which sleeps, and may wake to find the next index being built. In the queue it
    takes the lock between two. Measured at 1M events, one run each: the longest wait of a
    command during the index builds 1.16 s, against 1.38 s outside the queue.
    """
    if connection.dialect == "sqlite":
        bulk.alone(connection, statement)
    else:
        connection.execute(statement)


def drop_others(view: View, track: Track, store: ViewStore) -> None:
    """Drop every generation of the view but `track`'s, the live one, each a little at a time.

    The swap has happened: a generation that cannot be dropped is logged and left to the next.
    """
    connection = store.connect()
    try:
        for old in tracks(connection, view.name):
            if old.generation == track.generation:
                continue
            try:
                drop_tables(connection, view, old.generation, untrack=True)
            except Exception:
                log.warning(
                    "could not drop %s generation %d; the next swap drops it",
                    view.name,
                    old.generation,
                    exc_info=True,
                )
    finally:
        connection.close()


def ensure_current(
    ledger: Ledger, views: list[View], store: ViewStore, report: Callable[[Progress], None] | None = None
) -> list[str]:
    """Rebuild every view whose live generation was built by an older schema; returns their names.

    A view another process is rebuilding already is left to it (that rebuild swaps in a
    current generation, which runners then follow).
    """
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
    rebuilt = []
    for view in stale:
        try:
            rebuild(ledger, view, store, report)
        except RebuildRunning:
            continue
        rebuilt.append(view.name)
    return rebuilt
