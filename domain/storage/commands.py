"""The command log: one row per applied command, committed with its events.

A retried command finds its row and gets the first answer back; the row's primary
key makes a concurrent duplicate fail inside the same transaction as its events, so
a retry can never apply twice, even across a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

EventKey = tuple[UUID, int]
LogRow = tuple[int, str, int, str, bytes]
"""(position, aggregate id as text, version, topic, JSON payload): one stored event, undecoded."""


@dataclass(frozen=True)
class CommandRecord:
    """What the ledger remembers of an applied command."""

    command_id: str
    name: str
    digest: str
    actor_id: UUID
    aggregate_id: UUID
    events: tuple[EventKey, ...]
    recorded_at: datetime

    def row(self) -> tuple[Any, ...]:
        return (
            self.command_id,
            self.name,
            self.digest,
            str(self.actor_id),
            str(self.aggregate_id),
            orjson.dumps([[str(a), v] for a, v in self.events]).decode(),
            self.recorded_at.isoformat(),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> CommandRecord:
        command_id, name, digest, actor_id, aggregate_id, events, recorded_at = row
        if isinstance(recorded_at, str):
            recorded_at = datetime.fromisoformat(recorded_at)
        return cls(
            command_id=command_id,
            name=name,
            digest=digest,
            actor_id=UUID(str(actor_id)),
            aggregate_id=UUID(str(aggregate_id)),
            events=tuple((UUID(a), int(v)) for a, v in orjson.loads(events)),
            recorded_at=recorded_at,
        )


class CommandLog(Protocol):
    """What the ledger's recorder offers beside the library's notification log."""

    def select_command(self, command_id: str) -> CommandRecord | None:
        """The record of an applied command, if there is one."""

    def positions_of(self, keys: Sequence[EventKey]) -> list[int]:
        """The notification ids of the stored events with these keys, in the same order."""

    def read_log(self, after: int, limit: int) -> list[LogRow]:
        """Up to `limit` stored events after position `after`, in order, as plain tuples (no decoding)."""

    def read_positions(self, positions: Sequence[int]) -> list[LogRow]:
        """The stored events at these positions (those that exist), in position order, undecoded."""


COLUMNS = ("command_id", "name", "digest", "actor_id", "aggregate_id", "events", "recorded_at")
REFUSAL = "Duty Ledger is append-only: {op} on {table} is refused"
