"""The ledger's clock: record time comes from here, never from the caller."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time, timezone-aware."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real UTC clock: what a production ledger records with."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests and the simulated demo ledger."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        """Move the clock to `moment`; it never goes backwards."""
        with self._lock:
            if moment < self._now:
                raise ValueError(f"clock cannot go back from {self._now} to {moment}")
            self._now = moment

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now
