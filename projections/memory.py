"""What a view remembers per aggregate between batches: bounded, and rebuilt from the store on a miss.

A view keeps a small state per aggregate (a case's open deadlines, say) to turn the next
event into rows. Memory holds the most recently used states only, so it stays flat
however long the log grows; a state that was dropped, or never seen since the view
started, is rebuilt by replaying the aggregate's stored events up to the version
before the one at hand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from projections.view import Envelope

MEMORY = 5_000
"""Aggregates remembered per view: enough for the cases active at once, small enough to stay flat."""


class Versioned(Protocol):
    version: int


S = TypeVar("S", bound=Versioned)


class AggregateMemory(Generic[S]):
    """Per-aggregate states, most recently used first, at most `size` of them."""

    def __init__(self, rebuild: Callable[[UUID, int], S], size: int = MEMORY) -> None:
        self._rebuild = rebuild
        self._states: OrderedDict[str, S] = OrderedDict()
        """By aggregate id as text: hashed and compared in C, unlike UUID objects."""
        self._size = size

    def before(self, envelope: Envelope) -> S | None:
        """The state just before the envelope's event (None before a first event): remembered, or rebuilt."""
        key, version = envelope.aggregate
        state = self._states.pop(key, None)
        if version == 1:
            return None
        if state is None or state.version != version - 1:
            state = self._rebuild(UUID(key), version - 1)
        return state

    def keep(self, envelope: Envelope, state: S) -> None:
        """Remember the state after the envelope's event, dropping the least recently used past the limit."""
        self._states[envelope.aggregate[0]] = state
        if len(self._states) > self._size:
            self._states.popitem(last=False)

    def forget(self) -> None:
        self._states.clear()
