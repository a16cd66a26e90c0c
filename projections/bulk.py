"""A rebuild's transactions: how long each holds the write lock, and why.

Applying the log, a rebuild commits in few large holds (`HOLD`); copying rows in and
dropping an old generation, on SQLite, it writes `CHUNK` rows per transaction.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from projections.runner import Runner
from projections.store import ViewConnection

HOLD = (10_000, 1.0)
"""A rebuild commits after this many events or seconds, whichever comes first. Each commit
rewrites every page its rows touched, so few large commits write far less than many small
ones (measured: 35% faster than committing every batch); on SQLite the ledger's writers
wait for each commit, so it is bounded in time too."""


CHUNK = 50_000
"""SQLite: rows one transaction of a rebuild's merge or clean-up writes at most. The file has one
writer and the ledger's commands wait for it; a statement over a whole table (a copy, a drop)
would hold it for a time that grows with the log, past the commands' busy timeout on a large
one. Measured at 1M events: at most 0.34 s per chunk, where dropping one table took 1.0–2.6 s."""


def in_chunks(connection: ViewConnection, table: str, statement: str) -> None:
    """SQLite: run `statement` over `table`'s rows `CHUNK` at a time, each chunk in a transaction.

    `statement` takes the chunk as two parameters, the first rowid and the one after the last:
    `… WHERE rowid >= ? AND rowid < ?`.
    """
    ((low, high),) = connection.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}")
    if low is None:
        return
    for start in range(low, high + 1, CHUNK):
        alone(connection, statement, (start, start + CHUNK))


def alone(connection: ViewConnection, statement: str, params: tuple[object, ...] = ()) -> None:
    """SQLite: run one statement as a transaction of its own, queued with the ledger's writers,
    then let them in (`let_writers_in`)."""
    with connection.transaction():
        connection.execute(statement, params)
    let_writers_in()


PAUSE = 0.005
"""Seconds a rebuild waits after each chunk (`in_chunks`), each hold (`apply_all`) and each index it
builds or drops in the ledger's file, before its next transaction there."""


def let_writers_in() -> None:
    """Give a writer waiting for the SQLite file's lock the chance to take it.

    A lock let go wakes whoever waits for it, but does not hand it over: a rebuild that began its
    next transaction at once often takes it again first. Measured between two processes, with
    transactions of 0.1 s back to back: the other process waited up to 0.2 s (two of them), and
    0.055 s with this pause.
    """
    time.sleep(PAUSE)


_pausing = threading.Lock()
_pauses = 0
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for one hold, then collect the young generations once.

    A rebuild keeps hundreds of thousands of objects alive (remembered aggregates, a batch's
    events), and the collector would traverse them again every 700 allocations: measured,
    a third of a rebuild's time. What a hold allocates is almost all freed by reference
    counting; the collection after it reclaims the rest, so memory stays flat. Holds in
    several threads overlap safely: the collector is back as it was when the last one ends.
    """
    global _pauses, _was_enabled
    with _pausing:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pausing:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
        gc.collect(1)


def apply_hold(runner: Runner) -> bool:
    """Apply batches in one transaction until a `HOLD` is reached; False once caught up.

    The clock starts once the transaction holds the write lock, and at least one batch is
    applied per transaction, so waiting for the lock never reads as having caught up.
    """
    events, seconds = HOLD
    with collector_paused(), runner.connection.transaction():
        done, until = 0, time.monotonic() + seconds
        while True:
            read = runner.step()
            if not read:
                return False
            done += read
            if done >= events or time.monotonic() >= until:
                return True


def apply_all(runner: Runner, report: Callable[[int], None] | None = None) -> None:
    """Apply the log hold by hold until the runner is caught up, reporting its position after each,
    the last (which found the end of the log) included."""
    while apply_hold(runner):
        if not runner.store.scratch:  # a share's scratch file has no other writer
            let_writers_in()
        if report:
            report(runner.position)
    if report:
        report(runner.position)
