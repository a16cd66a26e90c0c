"""An aggregate cache kept exact by following the notification log.

The cache is current as of a log position. A command reads the registry, the rule book
and its case from memory, and its save checks, under the events table's write lock, that
nothing recorded after that position touched what it read (`domain.storage.freshness`);
when something did, the command refreshes the cache and runs again. A refresh reads the
notifications recorded since the cache last looked and forgets the aggregates they
touched. So a command costs no query of its own beyond its write, and still sees every
change made by other threads or processes.

This relies on the notification log never showing a lower id after a higher one:
true on SQLite (one writer at a time) and on the library's PostgreSQL recorder,
which locks the events table so insert order is commit order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence, Set
from threading import Lock
from typing import cast
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.persistence import ApplicationRecorder

from domain.aggregate import LedgerAggregate
from domain.storage.freshness import WINDOW

PAGE = 1000


class FollowingCache:
    """Shared, read-only aggregates, evicted when the log shows they changed elsewhere."""

    def __init__(self, repository: Repository[UUID], recorder: ApplicationRecorder, maxsize: int) -> None:
        self._repository = repository
        self._recorder = recorder
        self._entries: OrderedDict[UUID, LedgerAggregate] = OrderedDict()
        """Least recently used first; guarded by `_lock`."""
        self._maxsize = maxsize
        self._lock = Lock()
        self._position = recorder.max_notification_id() or 0

    @property
    def position(self) -> int:
        """The notification id up to which every cached aggregate is known to be current."""
        return self._position

    def refresh(self) -> None:
        """Forget aggregates changed since the cache last looked at the log.

        The log is read without the lock (a request on the event loop may be waiting for it);
        what was read is then forgotten and the position moved in one step under the lock, so a
        `get` that loaded an older version either keeps it before that step (and it is forgotten)
        or sees the position moved (and does not keep it).
        """
        current = self._recorder.max_notification_id() or 0
        start = self._position
        changed: list[tuple[UUID, int]] = []
        while start < current:
            page = self._recorder.select_notifications(
                start=start, stop=current, limit=PAGE, inclusive_of_start=False
            )
            if not page:
                break
            changed += [(cast(UUID, n.originator_id), n.originator_version) for n in page]
            start = page[-1].id
        with self._lock:
            for aggregate_id, version in changed:
                self._forget(aggregate_id, version)
            self._position = max(self._position, current)

    def changed_since(self, after: int, watched: Set[UUID]) -> bool:
        """Whether any of `watched` changed after position `after` (too many changes count as yes).

        Refreshes the cache on the way. It asks the log itself, not the cache: other requests
        may have moved the cache past `after` since a command read what it watches.
        """
        self.refresh()
        changes = self._recorder.select_notifications(
            start=after, stop=self._position, limit=WINDOW + 1, inclusive_of_start=False
        )
        return len(changes) > WINDOW or any(change.originator_id in watched for change in changes)

    def get(self, aggregate_id: UUID) -> LedgerAggregate:
        """The current aggregate, shared: callers must not change it (clone it instead)."""
        with self._lock:
            found = self._entries.get(aggregate_id)
            if found is not None:
                self._entries.move_to_end(aggregate_id)
                return found
        seen = self._position
        aggregate: LedgerAggregate = self._repository.get(aggregate_id)
        with self._lock:
            # A refresh that ran while we read may have forgotten a newer version: don't cache.
            if self._position == seen:
                self._keep(aggregate)
        return aggregate

    def saved(
        self,
        aggregates: Sequence[LedgerAggregate],
        positions: Sequence[int],
        intervening: Sequence[tuple[UUID, int]] | None = None,
    ) -> None:
        """Take in what this process just saved at `positions`.

        `intervening`, when the save checked it, names every aggregate others changed
        between the cache's position and these events: they are forgotten, and the
        cache moves past them.
        """
        with self._lock:
            if not positions or self._position >= min(positions):
                return  # a refresh or a later save already passed these events
            for aggregate_id, version in intervening or ():
                self._forget(aggregate_id, version)
            for aggregate in aggregates:
                self._keep(aggregate)
            if intervening is not None or min(positions) == self._position + 1:
                self._position = max(positions)

    def _keep(self, aggregate: LedgerAggregate) -> None:
        """Remember `aggregate` as the most recently used, forgetting the least if full (under `_lock`).

        A later version already held stays: a thread that saved after this one got here first.
        """
        held = self._entries.get(aggregate.id)
        if held is None or held.version <= aggregate.version:
            self._entries[aggregate.id] = aggregate
        self._entries.move_to_end(aggregate.id)
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)

    def _forget(self, aggregate_id: UUID, version: int) -> None:
        """Forget the aggregate because its event `version` was recorded, unless what is held has it.

        The store holds one event per aggregate and version, so a held aggregate at `version` or
        later was built from that very event (it was saved here, or loaded after it): still current.
        Forgetting it anyway made every save forget the cases other threads had just saved.
        """
        held = self._entries.get(aggregate_id)
        if held is not None and held.version < version:
            del self._entries[aggregate_id]


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
