"""An aggregate cache kept exact by following the notification log.

Before each command the cache asks the store for its highest notification id; if
anything was recorded since the cache last looked, it reads those notifications and
forgets the aggregates they touched. So a command reads the registry, the rule book
and its case from memory, with one cheap query, instead of one query per aggregate,
and still sees every change made by other threads or processes.

This relies on the notification log never showing a lower id after a higher one:
true on SQLite (one writer at a time) and on the library's PostgreSQL recorder,
which locks the events table so insert order is commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from threading import Lock
from typing import cast
from uuid import UUID

from eventsourcing.application import LRUCache, Repository
from eventsourcing.persistence import ApplicationRecorder

from domain.aggregate import LedgerAggregate

PAGE = 1000


class FollowingCache:
    """Shared, read-only aggregates, evicted when the log shows they changed elsewhere."""

    def __init__(self, repository: Repository[UUID], recorder: ApplicationRecorder, maxsize: int) -> None:
        self._repository = repository
        self._recorder = recorder
        self._entries: LRUCache[UUID, LedgerAggregate] = LRUCache(maxsize=maxsize)
        self._lock = Lock()
        self._position = recorder.max_notification_id() or 0

    @property
    def position(self) -> int:
        """The notification id up to which every cached aggregate is known to be current."""
        return self._position

    def refresh(self) -> None:
        """Forget aggregates changed since the cache last looked at the log."""
        current = self._recorder.max_notification_id() or 0
        with self._lock:
            start = self._position
            while start < current:
                page = self._recorder.select_notifications(
                    start=start, stop=current, limit=PAGE, inclusive_of_start=False
                )
                if not page:
                    break
                for notification in page:
                    self._forget(cast(UUID, notification.originator_id))
                start = page[-1].id
            self._position = max(self._position, current)

    def get(self, aggregate_id: UUID) -> LedgerAggregate:
        """The current aggregate, shared: callers must not change it (clone it instead)."""
        try:
            return self._entries.get(aggregate_id)
        except KeyError:
            pass
        seen = self._position
        aggregate: LedgerAggregate = self._repository.get(aggregate_id)
        with self._lock:
            # A refresh that ran while we read may have forgotten a newer version: don't cache.
            if self._position == seen:
                self._entries.put(aggregate_id, aggregate)
        return aggregate

    def saved(self, aggregates: Sequence[LedgerAggregate], positions: Sequence[int]) -> None:
        """Take in what this process just saved at `positions`."""
        with self._lock:
            if not positions or self._position >= min(positions):
                return  # a refresh already passed these events; later ones may exist
            for aggregate in aggregates:
                self._entries.put(aggregate.id, aggregate)
            if min(positions) == self._position + 1:
                self._position = max(positions)

    def _forget(self, aggregate_id: UUID) -> None:
        with suppress(KeyError):
            self._entries.get(aggregate_id, evict=True)


class StripedLocks:
    """Serialises commands on the same aggregate within this process, so they queue instead of colliding.

    A command locks only the aggregate it is addressed to (one stripe), so two commands
    can never wait on each other in a cycle. Commands from other processes still collide
    in the database, and are retried.
    """

    def __init__(self, stripes: int = 256) -> None:
        self._locks = [Lock() for _ in range(stripes)]

    def for_aggregate(self, aggregate_id: UUID) -> Lock:
        return self._locks[aggregate_id.int % len(self._locks)]
