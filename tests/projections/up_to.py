"""The ledger as it would stand had nothing happened from an instant on: for time-travel tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from domain.events import LedgerEvent
from domain.ledger import Ledger
from domain.storage.commands import LogRow


class UpTo:
    """Only the events whose business time is before `instant`, in the order they were recorded."""

    def __init__(self, ledger: Ledger, instant: datetime) -> None:
        self.ledger = ledger
        self.instant = instant
        self.cache = ledger.cache
        self.mapper = ledger.mapper
        self.repository = ledger.repository
        self.database_url = ledger.database_url
        self.command_log = self
        self.events = self

    def read_log(self, after: int, limit: int) -> list[LogRow]:
        kept: list[LogRow] = []
        while len(kept) < limit:
            rows = self.ledger.command_log.read_log(after, limit)
            if not rows:
                break
            kept += [row for row in rows if self._before(row[4])]
            after = rows[-1][0]
        return kept[:limit]

    def select_command(self, command_id: str) -> Any:
        return self.ledger.command_log.select_command(command_id)

    def positions_of(self, keys: list[tuple[UUID, int]]) -> list[int]:
        return self.ledger.command_log.positions_of(keys)

    def get(self, aggregate_id: UUID, lte: int | None = None, **_: Any) -> Iterator[LedgerEvent]:
        for event in self.ledger.events.get(aggregate_id, lte=lte):
            assert isinstance(event, LedgerEvent)
            if event.occurred_at < self.instant:
                yield event

    def _before(self, payload: bytes) -> bool:
        return datetime.fromisoformat(orjson.loads(payload)["occurred_at"]) < self.instant
