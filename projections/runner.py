"""Follows the ledger's notification log and applies it to views, batch by batch, exactly once.

Each batch is read once, decoded once, and then applied to each view in a transaction
of its own that also claims the batch's range of positions (see `tracking`). A failure
inside a view rolls that transaction back and makes the view forget what it held in
memory, so the next attempt replays the batch from the store.

Why following the log by notification id never skips an event: on SQLite one writer
commits at a time; the PostgreSQL recorder takes an EXCLUSIVE lock on the events table
for every insert, so ids are committed in id order and a reader that sees id N already
sees every committed id below N. Ids may have gaps (a rolled-back insert burns one);
a gap is never filled later, so it is simply passed over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from domain.events import LedgerEvent
from domain.storage.mapper import PydanticMapper
from projections.store import ViewConnection, ViewStore
from projections.tracking import (
    TRACKING,
    PositionMoved,
    Track,
    claim,
    create_generation,
    ensure_schema,
    live_track,
)
from projections.view import Envelope, View, Writer

if TYPE_CHECKING:
    from domain.ledger import Ledger

BATCH = 500


@dataclass(frozen=True)
class Share:
    """Part of the log for one of `count` parallel builders: the events of every aggregate whose
    id falls to `index`, up to position `until`. Every event of an aggregate falls to one share."""

    index: int
    count: int
    until: int

    def holds(self, aggregate_id: str) -> bool:
        return int(aggregate_id[:8], 16) % self.count == self.index


class Runner:
    """Applies the log to a set of views; several runners (threads or processes) may share views."""

    def __init__(
        self,
        ledger: Ledger,
        views: Sequence[View],
        store: ViewStore | None = None,
        batch: int = BATCH,
        tracks: dict[str, Track] | None = None,
        share: Share | None = None,
    ) -> None:
        """Follow the live generation of each view, or the given generations (a rebuild's).

        With a `share`, apply only its events and stop at its end (see `projections.shares`).
        """
        self.ledger = ledger
        self.views = list(views)
        self.store = store or ViewStore(ledger.database_url)
        self.batch = batch
        self.share = share
        mapper = ledger.mapper
        assert isinstance(mapper, PydanticMapper)
        self._mapper = mapper
        self.connection = self.store.connect()
        ensure_schema(self.connection)
        self.tracks: dict[str, Track] = tracks or {view.name: self._live(view) for view in self.views}
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._steps = 0
        """Batches applied so far (under `_progress`): a waiter knows a step happened since it looked."""
        self._probe: ViewConnection | None = None
        """Where `wait_for` asks what readers see: one connection, for any thread, one at a time."""
        self._probing = threading.Lock()
        self._observed: tuple[tuple[object, ...], ...] = ()
        """The live positions `observe` saw last."""
        self.listeners: list[Callable[[], None]] = []
        """Called (in the runner's thread) after every batch applied or swap followed."""
        topics = [view.topics for view in self.views]
        self._wanted: frozenset[str] | None = (
            None
            if any(t is None for t in topics)
            else frozenset().union(*(t for t in topics if t is not None))
        )
        """The topics any view reads (None: all); the others are never decoded."""

    @property
    def position(self) -> int:
        """The position every view of this runner has reached (views waiting for a rebuild aside)."""
        current = [track.position for view, track in self._tracked() if self._current(view, track)]
        return min(current or [track.position for track in self.tracks.values()])

    def _tracked(self) -> list[tuple[View, Track]]:
        return [(view, self.tracks[view.name]) for view in self.views]

    @staticmethod
    def _current(view: View, track: Track) -> bool:
        """Whether the generation was built by this view's code (else a rebuild is replacing it)."""
        return track.schema_version == view.schema_version

    def step(self) -> int:
        """Apply the next batch of the log; 0 when every view is caught up, or waits for a rebuild.

        A view whose live generation was built by another schema is left alone (its tables do
        not fit this code) until a rebuild swaps in a current one, which the runner then follows.
        """
        if not all(self._current(view, track) for view, track in self._tracked()):
            self._follow_swaps()
            if not any(self._current(view, track) for view, track in self._tracked()):
                return 0
        rows = self.ledger.command_log.read_log(self.position, self.batch)
        share = self.share
        if share is not None:
            rows = [row for row in rows if row[0] <= share.until]
            if not rows:
                return 0
        if not rows:
            return self.step() if self._follow_swaps() else 0
        last = rows[-1][0]
        wanted = self._wanted
        envelopes = [
            Envelope(position, topic, payload=payload, decode=self._decode, aggregate=(aggregate_id, version))
            for position, aggregate_id, version, topic, payload in rows
            if (wanted is None or topic in wanted) and (share is None or share.holds(aggregate_id))
        ]
        for view, track in self._tracked():
            if self._current(view, track):
                self._apply(view, envelopes, last)
        self._stepped()
        return len(rows)

    def _stepped(self) -> None:
        """Tell waiters the views moved (a batch applied, or a swap followed)."""
        with self._progress:
            self._steps += 1
            self._progress.notify_all()
        for listener in self.listeners:
            listener()

    def observe(self) -> bool:
        """Where another process applies the log: tell waiters and listeners, as a step would, when
        the views' live positions moved since the last look. Whether they moved."""
        seen = tuple(
            self.connection.execute(
                f"SELECT view, generation, position FROM {TRACKING} WHERE live = 1 ORDER BY view"
            )
        )
        if seen == self._observed:
            return False
        self._observed = seen
        self._stepped()
        return True

    def catch_up(self) -> int:
        """Apply the log up to its current end; returns how many events were read."""
        total = 0
        while True:
            done = self.step()
            if not done:
                return total
            total += done

    def run(self, stop: threading.Event, poll: float = 1.0) -> None:
        """Keep the views caught up until `stop` is set; woken early by `wake()`."""
        while not stop.is_set():
            if self.step():
                continue
            self._wake.wait(poll)
            self._wake.clear()

    def wake(self, position: int | None = None) -> None:
        """Something was recorded: look at the log now rather than at the next poll."""
        self._wake.set()

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until readers of every view see `position` applied, or `timeout` seconds pass.

        What readers see is asked of the live generations, not taken from this runner's own
        position: another runner may have applied the position already, and a rebuild may
        have swapped in a generation short of what this runner applied (it notices at its
        next step, so it is woken to follow the swap).
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._progress:
                steps = self._steps
            if self._readers_see(position):
                return True
            if time.monotonic() >= deadline:
                return False
            if self.position >= position:
                self.wake()
            if not self._await_step_after(steps, deadline):
                return self._readers_see(position)

    def _await_step_after(self, steps: int, deadline: float) -> bool:
        """Block until the runner has applied a batch after its `steps`-th, or `deadline` passes."""
        with self._progress:
            return self._progress.wait_for(lambda: self._steps > steps, max(0.0, deadline - time.monotonic()))

    def _readers_see(self, position: int) -> bool:
        """Whether every view's live generation has applied `position`."""
        names = [view.name for view in self.views]
        with self._probing:
            if self._probe is None:
                self._probe = self.store.connect()
            held = self._probe.execute(
                f"SELECT position FROM {TRACKING} WHERE live = 1 AND view IN ({', '.join('?' * len(names))})",
                names,
            )
        return len(held) == len(names) and all(int(found) >= position for (found,) in held)

    def close(self) -> None:
        self.connection.close()
        with self._probing:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def _apply(self, view: View, envelopes: Sequence[Envelope], last: int) -> None:
        """Apply the batch up to `last` to one view, in one transaction with its position."""
        track = self.tracks[view.name]
        if track.position >= last:
            return
        mine = [e for e in envelopes if e.position > track.position and view.wants(e.topic)]
        try:
            with self.connection.transaction():
                claimed = claim(self.connection, track, last)
                if mine:
                    view.apply(Writer(self.connection, track.generation), mine)
        except PositionMoved:
            view.forget()
            if not track.live:
                raise
            self.tracks[view.name] = self._live(view)
            return
        except BaseException:
            view.forget()
            raise
        self.tracks[view.name] = claimed

    def _follow_swaps(self) -> bool:
        """Move to any live generation a rebuild swapped in since the last batch; True if one was.

        A runner notices a swap when its next claim fails; with nothing new in the log there is
        no claim, and a rebuild that swapped in behind this runner's position would stay behind.
        """
        swapped = False
        for view in self.views:
            track = self.tracks[view.name]
            if not track.live:
                continue
            current = live_track(self.connection, view.name)
            if current is not None and current.generation != track.generation:
                view.forget()
                self.tracks[view.name] = current
                swapped = True
        if swapped:
            self._stepped()
        return swapped

    def _live(self, view: View) -> Track:
        """The view's live generation, created (empty, at position 0) if it has none yet."""
        return live_track(self.connection, view.name) or create_generation(self.connection, view, live=True)

    def _decode(self, envelope: Envelope) -> LedgerEvent:
        aggregate_id, version = envelope.aggregate
        event = self._mapper.from_state(envelope.topic, UUID(aggregate_id), version, dict(envelope.stored))
        assert isinstance(event, LedgerEvent)
        return event
