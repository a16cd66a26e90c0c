"""Read-set validation: a command's cached reads are checked inside its own write transaction.

A command reads the registry, the rule book and its case from the ledger's cache, which
is current as of a log position. Instead of asking the store before every command
whether anything changed since (one more query, and on PostgreSQL one more round trip),
the recorder looks, while it holds the events table's write lock, at what was recorded
after that position and before the command's own events. If none of it touched an
aggregate the command read, the decision stands and commits; otherwise the transaction
rolls back and the command runs again on a refreshed cache. Nothing can slip in between
the look and the commit, because both happen under the lock that orders the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

WINDOW = 1000
"""More events than this recorded behind the cache's back: refresh before deciding, not under the lock."""


class StaleRead(Exception):
    """Something the command read was changed by another writer after the cache's position."""


@dataclass
class Freshness:
    """What a command read, and the log position its cache was current at."""

    after: int
    """Every event up to this position was known to the cache when the command began."""
    read: set[UUID] = field(default_factory=set)
    """The aggregates the command read (loaded, consulted, or looked for)."""
    intervening: tuple[tuple[UUID, int], ...] = ()
    """Filled in by the recorder: the events other writers recorded after `after`, before this
    command's, each as (aggregate, version)."""

    def judge(self, changed: Iterable[tuple[UUID, int]]) -> None:
        """Accept the window of others' events `changed`, or raise `StaleRead` if it touches the read set."""
        changed = tuple(changed)
        if len(changed) > WINDOW or not self.read.isdisjoint(aggregate for aggregate, _ in changed):
            raise StaleRead(f"{len(changed)} events were recorded since position {self.after}")
        self.intervening = changed
