"""Views kept in step inside the application's own process: the embedded (SQLite) default.

The library's SQLite recorder cannot push notifications, so the ledger calls its
listeners after each save and the runner wakes at once; a slow poll covers writes
made by other processes on the same file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from projections import build_views
from projections.rebuild import ensure_current
from projections.runner import Runner
from projections.store import ViewStore

if TYPE_CHECKING:
    from domain.ledger import Ledger

log = logging.getLogger(__name__)


class EmbeddedProjections:
    """A background thread that applies every save to the views, promptly."""

    def __init__(
        self,
        ledger: Ledger,
        names: Iterable[str] | None = None,
        poll: float = 1.0,
        store: ViewStore | None = None,
    ) -> None:
        self.ledger = ledger
        self.poll = poll
        self.store = store or ViewStore(ledger.database_url)
        self.views = build_views(ledger, names)
        self.runner: Runner | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dutyledger-projections", daemon=True)

    def start(self) -> EmbeddedProjections:
        """Rebuild views built by an older schema, catch up, then follow the log in the background."""
        rebuilt = ensure_current(self.ledger, self.views, self.store)
        if rebuilt:
            log.info("rebuilt views with a new schema: %s", ", ".join(rebuilt))
        self.runner = Runner(self.ledger, self.views, self.store)
        self.runner.catch_up()
        self.ledger.listeners.append(self.runner.wake)
        self._thread.start()
        return self

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until the views have applied `position` (read your own writes)."""
        assert self.runner is not None
        return self.runner.wait_for(position, timeout)

    def stop(self) -> None:
        if self.runner is None:
            return
        self._stop.set()
        self.runner.wake()
        self._thread.join(timeout=10)
        if self.runner.wake in self.ledger.listeners:
            self.ledger.listeners.remove(self.runner.wake)
        self.runner.close()
        self.runner = None

    def _run(self) -> None:
        assert self.runner is not None
        while not self._stop.is_set():
            try:
                self.runner.run(self._stop, self.poll)
            except Exception:
                log.exception("a view failed to apply a batch; retrying from the store")
                self._stop.wait(self.poll)
