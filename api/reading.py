"""Reading the views from request threads: pooled connections, and waiting to read one's own writes."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager

from projections import VIEWS
from projections.embedded import EmbeddedProjections
from projections.store import ViewConnection, ViewStore
from projections.tracking import TRACKING, ensure_schema

POOL = 16
"""Connections kept open for readers; more are opened under load and closed after use."""


class ViewReader:
    """Hands out connections to the views' database, and tells when the views reach a position."""

    def __init__(self, store: ViewStore, embedded: EmbeddedProjections | None = None) -> None:
        self.store = store
        self.embedded = embedded
        self._idle: queue.LifoQueue[ViewConnection] = queue.LifoQueue(POOL)
        self._built = False

    @contextmanager
    def connection(self) -> Iterator[ViewConnection]:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = self.store.connect()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()

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
            ensure_schema(connection)
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
