"""A bell the sequencer rings when the log moves, heard by every live stream (from any thread)."""

from __future__ import annotations

import asyncio
import threading


class Bell:
    """Wakes waiting streams at once when rung; a stream that was not waiting yet learns from its ticket.

    A stream takes a ticket before it reads the log, then waits with it: a ring that came in
    between makes the wait return at once, so no ring is ever missed.
    """

    def __init__(self) -> None:
        self._rings = 0
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def ticket(self) -> int:
        with self._lock:
            return self._rings

    def ring(self) -> None:
        """The log moved (callable from any thread)."""
        with self._lock:
            self._rings += 1
            waiting = list(self._waiting)
        for loop, event in waiting:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has closed: the stream is gone
                continue

    async def wait(self, ticket: int, timeout: float) -> bool:
        """Wait until rung after `ticket` (True), or `timeout` seconds (False)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self._rings != ticket:
                return True
            self._waiting.add(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1].wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiting.discard(entry)
