"""Tables of the API's own beside the ledger (keys, identities): one shared connection each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from projections.store import ViewConnection, ViewStore


class SharedConnection:
    """One connection, used by one thread at a time; `ddl` (CREATE TABLE IF NOT EXISTS…) runs on opening.

    The tables behind it are read rarely (keys are cached; identities are read one at a time),
    so one connection is enough and never holds a write lock for long.
    """

    def __init__(self, database_url: str, ddl: str) -> None:
        self.store = ViewStore(database_url)
        self.ddl = ddl
        self.lock = threading.Lock()
        self._open: ViewConnection | None = None

    @contextmanager
    def __call__(self) -> Iterator[ViewConnection]:
        with self.lock:
            if self._open is None:
                self._open = self.store.connect()
                self._open.execute(self.ddl)
            yield self._open

    def close(self) -> None:
        with self.lock:
            if self._open is not None:
                self._open.close()
                self._open = None
