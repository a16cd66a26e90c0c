"""Spies on a ledger: what its saves did, and another request cutting in."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.ledger import Ledger
from domain.storage.freshness import StaleRead


def saves_of(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, for each save `ledger` attempts, whether it committed or rolled back on a stale read."""
    outcomes: list[str] = []
    save = ledger.save

    def counted(*objs: Any, **kwargs: Any) -> Any:
        try:
            recordings = save(*objs, **kwargs)
        except StaleRead:
            outcomes.append("stale")
            raise
        outcomes.append("committed")
        return recordings

    monkeypatch.setattr(ledger, "save", counted)
    return outcomes


def another_request_refreshes_once_read(
    ledger: Ledger, aggregate_id: UUID, reader: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the command has read `aggregate_id`, another request of this process refreshes the cache.

    Every read request does so (`api.access.read_scope` calls `actor_at`), and so does any
    other command after waiting on its aggregate or after a stale read; here it happens at
    a fixed point instead of on another thread.
    """
    peek = ledger.peek
    done: list[bool] = []

    def peek_then_let_another_request_in(cls: Any, wanted: UUID) -> Any:
        found = peek(cls, wanted)
        if wanted == aggregate_id and not done:
            done.append(True)
            ledger.actor_at(reader)
        return found

    monkeypatch.setattr(ledger, "peek", peek_then_let_another_request_in)
