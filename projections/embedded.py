"""Views kept in step inside the application's own process: the embedded (SQLite) default.

The library's SQLite recorder cannot push notifications, so the ledger calls its
listeners after each save and the runner wakes at once.

Several server processes may serve one store (`dutyledger serve --workers N`, or several
hosts on one PostgreSQL database). One of them applies the log to the views: the first to
take the store's applier lock (`ViewStore.try_applying`). It looks for the other processes'
saves every `watch` seconds, besides being woken by its own. The others only watch: every
`watch` seconds they look at the views' positions and, when those moved, wake whoever waits
in their process (a read of one's own write, a live stream, the webhook worker). If the
process applying the log ends, the next to look takes the lock over and carries on from the
views' positions. (Were two to apply at once, say after a PostgreSQL session was cut
unnoticed, the runners would still apply each event once: see `projections.runner`.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from projections import build_views
from projections.rebuild import ensure_current
from projections.runner import Runner
from projections.store import Held, ViewStore

if TYPE_CHECKING:
    from domain.ledger import Ledger

log = logging.getLogger(__name__)

WATCH = 0.01
"""Seconds: how often the process applying the log looks for other processes' saves, and how
often the others look whether it applied them (one small query each)."""


class EmbeddedProjections:
    """A background thread that applies every save to the views, promptly."""

    def __init__(
        self,
        ledger: Ledger,
        names: Iterable[str] | None = None,
        poll: float = 1.0,
        store: ViewStore | None = None,
        watch: float = WATCH,
    ) -> None:
        self.ledger = ledger
        self.poll = poll
        self.watch = watch
        self.store = store or ViewStore(ledger.database_url)
        self.views = build_views(ledger, names)
        self.runner: Runner | None = None
        self._applier: Held | None = None
        """The applier lock, while this process holds it."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dutyledger-projections", daemon=True)

    @property
    def applying(self) -> bool:
        """Whether this process applies the log to the views (else another process does: it watches)."""
        return self._applier is not None

    def start(self) -> EmbeddedProjections:
        """Rebuild views built by an older schema, catch up, then follow the log in the background."""
        rebuilt = ensure_current(self.ledger, self.views, self.store)
        if rebuilt:
            log.info("rebuilt views with a new schema: %s", ", ".join(rebuilt))
        self.runner = Runner(self.ledger, self.views, self.store)
        if self._take_over():
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
        if self._applier is not None:
            self._applier.close()
            self._applier = None

    def _take_over(self) -> bool:
        """Take the applier lock if no other process holds it; whether this process applies the log."""
        if self._applier is None:
            self._applier = self.store.try_applying()
            if self._applier is not None and self._thread.is_alive():
                log.info("this process now applies the log to the views (the one that did has ended)")
        return self.applying

    def _run(self) -> None:
        assert self.runner is not None
        poll = min(self.poll, self.watch)
        while not self._stop.is_set():
            try:
                if self._take_over():
                    self.runner.run(self._stop, poll)
                else:
                    self.runner.observe()
                    self._stop.wait(self.watch)
            except Exception:
                log.exception("a view failed to apply a batch; retrying from the store")
                self._stop.wait(self.poll)
