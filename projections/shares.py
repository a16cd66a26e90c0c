"""A rebuild on every core: each process builds the views over a share of the aggregates, then one merge.

The log is split by aggregate, never by position: every event of a case falls to the same
share, so each share's views see each aggregate's whole history in order, exactly as a
single pass would, and write the same rows for it. Rows of different shares never share
a key, except in tables of counts (`Table.counter`), whose shares are summed. So the
merged tables equal a single pass's, row for row (the rebuild tests compare digests).

Each share is built into a scratch SQLite file of its own (no journal, no syncs: it is
thrown away), so the builders never wait for each other or hold the ledger's write lock;
the merge then copies every share into the new generation in one transaction, up to the
position every share stopped at, and the rebuild carries on from there as usual.

A view that ranks events over the whole log (`View.shareable` False: the public sequence,
the Merkle tree) cannot be split so; such views are built over the whole log in one more
process beside the shares, into a scratch file of their own, and merged with them.

The process that asked for the rebuild builds share 0 itself; the others are spawned
(never forked: a forked ledger would share its parent's connections and threads).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from domain.ledger import Ledger
from projections import build_views, bulk
from projections.runner import Runner, Share
from projections.store import ViewConnection, ViewStore
from projections.tracking import Track, claim, create_generation, ensure_schema
from projections.view import Table, View

PARALLEL_FROM = 50_000
"""Below this many events a single pass is quicker than starting processes (about 0.6 s each)."""

MAX_SHARES = 8
"""SQLite attaches at most ten databases to one connection; the merge attaches every share, and
the file of the views built whole beside them."""


def default_shares(events: int) -> int:
    """How many shares to build a log of `events` in: one per core, once that pays."""
    if events < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_SHARES))


def build_in_shares(
    ledger: Ledger,
    views: Sequence[View],
    store: ViewStore,
    fresh: dict[str, Track],
    until: int,
    shares: int,
    report: Callable[[int], None],
    stage: Callable[[str], None],
) -> dict[str, Track]:
    """Build each view's `fresh` generation up to position `until` in parallel processes.

    The views that can be split (`View.shareable`) are built in `shares` shares of the
    aggregates; the others (ranks over the whole log) in one more job of their own over the
    whole log, beside them. Returns the tracks at `until`. `views` must be the registered
    views (`projections.VIEWS`): the other processes build their own instances by name.
    """
    assert 1 < shares <= MAX_SHARES
    planned = jobs(views, shares, until)
    with tempfile.TemporaryDirectory(prefix="dutyledger-rebuild-") as folder:
        paths = [Path(folder) / f"share{index}.sqlite" for index in range(len(planned))]
        (own, own_share), *rest = planned
        with ProcessPoolExecutor(len(rest), mp_context=get_context("spawn")) as pool:
            others = [
                pool.submit(_build_share_alone, ledger.database_url, [v.name for v in job], path, share)
                for (job, share), path in zip(rest, paths[1:], strict=True)
            ]

            def watched(done: int) -> None:
                """Between holds of this process's share: stop at once if another process failed."""
                _raise_first_failure(others)
                report(done)

            try:
                built = [build_share(ledger, own, paths[0], own_share, watched)]
                wait(others, return_when=FIRST_EXCEPTION)
                _raise_first_failure(others)
                built += [future.result() for future in others]
            except BaseException:
                _stop_workers(pool)
                raise
        stage("merging the shares")
        return merge(store, views, fresh, list(zip(paths, built, strict=True)), until)


def _raise_first_failure(futures: Sequence[Future[dict[str, int]]]) -> None:
    """Raise the error of the first of `futures` that failed, if any has."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the other processes now: a failed rebuild is abandoned, and nothing waits for their shares.

    (Python 3.14 has `ProcessPoolExecutor.terminate_workers()`; before it, the pool's processes.)
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def jobs(views: Sequence[View], shares: int, until: int) -> list[tuple[list[View], Share]]:
    """What each process builds: a share of the aggregates of the splittable views, or all the rest."""
    split = [view for view in views if view.shareable]
    whole = [view for view in views if not view.shareable]
    planned = [(split, Share(index, shares, until)) for index in range(shares)] if split else []
    return planned + ([(whole, Share(0, 1, until))] if whole else [])


def build_share(
    ledger: Ledger,
    views: Sequence[View],
    path: Path,
    share: Share,
    report: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Build the views over one share into a scratch file; returns each view's generation there."""
    scratch = ViewStore(f"sqlite:///{path}", scratch=True)
    connection = scratch.connect()
    try:
        ensure_schema(connection)
        tracks = {view.name: create_generation(connection, view, live=False) for view in views}
    finally:
        connection.close()
    runner = Runner(ledger, views, scratch, tracks=tracks, share=share)
    try:
        bulk.apply_all(runner, report)
    finally:
        runner.close()
    return {name: track.generation for name, track in tracks.items()}


def _build_share_alone(database_url: str, names: list[str], path: Path, share: Share) -> dict[str, int]:
    """`build_share` in a process of its own, with its own ledger and view instances."""
    with Ledger(database_url) as ledger:
        return build_share(ledger, build_views(ledger, names), path, share)


def merge(
    store: ViewStore,
    views: Sequence[View],
    fresh: dict[str, Track],
    built: list[tuple[Path, dict[str, int]]],
    until: int,
) -> dict[str, Track]:
    """Copy every share into the fresh generations, then move their positions to `until` at once.

    On SQLite the copy is made in transactions of at most `bulk.CHUNK` rows: the file has one
    writer, and the ledger's commands wait for each of them, so the longest wait hardly grows
    with the log (one transaction would make it grow with the log, past the commands'
    busy timeout on a few million events). The fresh generations are not live, so no reader
    sees a merge half done; a merge that fails leaves them to the rebuild to drop.
    On PostgreSQL, where a copy blocks no writer, copy and claim are one transaction.
    """
    connection = store.connect()
    try:
        if connection.dialect == "sqlite":
            with _attached(connection, [path for path, _ in built]):
                for view in views:
                    for table in view.tables:
                        target = table.physical(fresh[view.name].generation)
                        for source in _sources(view, table, built):
                            _copy_in_chunks(connection, table, target, source)
            with connection.transaction():
                return {view.name: claim(connection, fresh[view.name], until) for view in views}
        with _copying_loader(connection, [path for path, _ in built]) as copy, connection.transaction():
            for view in views:
                for table in view.tables:
                    copy(
                        table.physical(fresh[view.name].generation),
                        _merged(table, _sources(view, table, built)),
                    )
            return {view.name: claim(connection, fresh[view.name], until) for view in views}
    finally:
        connection.close()


def _sources(view: View, table: Table, built: list[tuple[Path, dict[str, int]]]) -> list[str]:
    """The table as each share that built its view holds it, by the name the share is attached under."""
    return [
        f"share{i}.{table.physical(gens[view.name])}"
        for i, (_, gens) in enumerate(built)
        if view.name in gens
    ]


def _copy_in_chunks(connection: ViewConnection, table: Table, target: str, source: str) -> None:
    """SQLite: copy the rows of one share's table into the target, `bulk.CHUNK` rows per transaction.

    Rows of different shares never share a key, but in a table of counts, where they add up.
    """
    adding = "" if table.counter is None else " " + table.adding(target)
    bulk.in_chunks(
        connection,
        source,
        f"INSERT INTO {target} SELECT * FROM {source} WHERE rowid >= ? AND rowid < ?{adding}",
    )


def _merged(table: Table, sources: list[str]) -> str:
    """SELECT of the table's rows over all shares: all rows, or for a table of counts, their sums."""
    every = " UNION ALL ".join(f"SELECT * FROM {source}" for source in sources)
    if table.counter is None:
        return every
    key = ", ".join(table.key)
    return f"SELECT {key}, SUM({table.counter}) AS {table.counter} FROM ({every}) AS shares GROUP BY {key}"


@contextmanager
def _attached(connection: ViewConnection, paths: list[Path]) -> Iterator[None]:
    """SQLite: the shares attached to the target as `share0`, `share1`…: copies need no Python per row."""
    for index, path in enumerate(paths):
        connection.execute(f"ATTACH DATABASE ? AS share{index}", (str(path),))
    try:
        yield
    finally:
        for index in range(len(paths)):
            connection.execute(f"DETACH DATABASE share{index}")


@contextmanager
def _copying_loader(connection: ViewConnection, paths: list[Path]) -> Iterator[Callable[[str, str], None]]:
    """PostgreSQL: read the shares through SQLite and stream their rows in with COPY."""
    source = sqlite3.connect(":memory:")
    for index, path in enumerate(paths):
        source.execute(f"ATTACH DATABASE ? AS share{index}", (str(path),))

    def copy(target: str, select: str) -> None:
        rows = source.execute(select)
        columns = ", ".join(column[0] for column in rows.description)
        cursor: Any
        with (
            connection.raw.cursor() as cursor,
            cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as stream,
        ):
            for row in rows:
                stream.write_row(row)

    try:
        yield copy
    finally:
        source.close()
