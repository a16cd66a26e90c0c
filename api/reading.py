"""Reading the views for requests: where a read runs, pooled connections, and reading one's own writes."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from api.problems import ApiProblem
from domain.errors import LedgerError
from projections import VIEWS
from projections.embedded import EmbeddedProjections
from projections.store import ViewConnection, ViewStore
from projections.tracking import TRACKING, ensure_schema

POOL = 16
"""Connections kept open for readers; more are opened under load and closed after use."""

P = ParamSpec("P")
T = TypeVar("T")


class ViewReader:
    """Hands out connections to the views' database, and tells when the views reach a position."""

    def __init__(
        self, store: ViewStore, embedded: EmbeddedProjections | None = None, *, inline: bool = False
    ) -> None:
        """`inline`: run reads on the event loop (see `run`); only when every store they touch is SQLite.

        The tracking table is made here, once: afterwards asking how far the views are is a
        plain read, which never waits for a writer (it may run on the event loop).
        """
        self.store = store
        self.embedded = embedded
        self.inline = inline
        self._idle: queue.LifoQueue[ViewConnection] = queue.LifoQueue(POOL)
        self._built = False
        with self.connection() as connection:
            ensure_schema(connection)

    @contextmanager
    def connection(self) -> Iterator[ViewConnection]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = self.store.connect()
        try:
            yield connection
        except (ApiProblem, LedgerError):
            self._keep(connection)  # a refusal (403, 404…): the connection itself is fine
            raise
        except BaseException:
            connection.close()
            raise
        self._keep(connection)

    def _keep(self, connection: ViewConnection) -> None:
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()

    async def run(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read of the views (and of the ledger through its cache) where it is answered soonest.

        Inline, on the event loop, when the stores are SQLite files: a read there is a lookup in
        local B-trees of a fraction of a millisecond that no writer blocks (WAL), and handing it
        to a worker thread costs more than the read itself, as the GIL changes hands each way
        (measured on GET /cases/{id}: 525 requests/s with four thread hops a request, 924 with
        one, 1,450 with none). On a worker thread otherwise: a PostgreSQL read waits on the
        network, and the event loop must not.
        """
        if self.inline:
            return read(*args, **kwargs)
        return await run_in_threadpool(read, *args, **kwargs)

    async def is_built(self) -> bool:
        """`built`, asking the store only until it has once said yes (it then always does)."""
        return self._built or await self.run(self.built)

    async def caught_up(self, position: int, timeout: float) -> bool:
        """`reached`, waiting (if it must) on a worker thread, never on the event loop."""
        if await self.run(self.reached, position, 0):
            return True
        return await run_in_threadpool(self.reached, position, timeout)

    def reached(self, position: int, timeout: float) -> bool:
        """Whether every view's live generation has applied `position`, waiting up to `timeout` s."""
        if self.embedded is not None and self.embedded.runner is not None:
            return self.embedded.wait_for(position, timeout)
        deadline = time.monotonic() + timeout
        while True:
            if self._lowest() >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def built(self) -> bool:
        """Whether every view has a live generation to read (a runner has created them)."""
        if not self._built:
            self._built = self._lowest() >= 0
        return self._built

    def _lowest(self) -> int:
        """The lowest position of the views' live generations; -1 while any view has none."""
        names = list(VIEWS)
        with self.connection() as connection:
            rows = connection.execute(
                f"SELECT position FROM {TRACKING} WHERE live = 1 AND view IN ({', '.join('?' * len(names))})",
                names,
            )
        return min((int(p) for (p,) in rows), default=-1) if len(rows) == len(names) else -1

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
