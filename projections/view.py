"""What a view is: its tables, the events it wants, and how a batch of events changes its rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from domain.catalogue import current_version
from domain.events import LedgerEvent
from projections.columns import utc_text
from projections.store import ViewConnection

if TYPE_CHECKING:
    from domain.ledger import Ledger


@dataclass(frozen=True)
class Table:
    """One table of a view. Readers query `name` (an SQL view over the live generation)."""

    name: str
    columns: str
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    counter: str | None = None
    """For a table of counts (its columns: the key, then this one): rows add up rather than replace."""

    def physical(self, generation: int) -> str:
        return f"{self.name}__g{generation}"

    def create(self, generation: int, *, indexes: bool = True) -> list[str]:
        table = self.physical(generation)
        statements = [f"CREATE TABLE {table} ({self.columns}, PRIMARY KEY ({', '.join(self.key)}))"]
        return statements + (self.create_indexes(generation) if indexes else [])

    def adding(self, physical: str) -> str:
        """For a table of counts: the clause that adds an inserted row's count to the row with its key."""
        value = self.counter
        assert value is not None, f"{self.name} is not a table of counts"
        key = ", ".join(self.key)
        return f"ON CONFLICT ({key}) DO UPDATE SET {value} = {physical}.{value} + excluded.{value}"

    def create_indexes(self, generation: int) -> list[str]:
        """Secondary indexes: a rebuild adds them after loading, far cheaper than maintaining them."""
        table = self.physical(generation)
        return [
            f"CREATE INDEX IF NOT EXISTS {table}_i{number} ON {table} ({', '.join(columns)})"
            for number, columns in enumerate(self.indexes)
        ]


class Envelope:
    """An event at its position in the ledger's notification log: as stored, and decoded when asked.

    Decoding (pydantic validation) is the dearest step of following the log, so views that
    can work from the stored JSON `payload` never pay for it.
    """

    __slots__ = (
        "_decode",
        "_event",
        "_fields",
        "_occurred",
        "_recorded",
        "_stored",
        "aggregate",
        "payload",
        "position",
        "topic",
    )

    def __init__(
        self,
        position: int,
        topic: str,
        event: LedgerEvent | None = None,
        payload: bytes = b"",
        decode: Callable[[Envelope], LedgerEvent] | None = None,
        aggregate: tuple[str, int] | None = None,
    ) -> None:
        self.position = position
        self.topic = topic
        self.payload = payload
        """The event's fields as stored (JSON, without aggregate id and version); empty if not at hand."""
        self._event = event
        self._decode = decode
        self._fields: dict[str, Any] | None = None
        self._stored: dict[str, Any] | None = None
        self._occurred: str | None = None
        self._recorded: str | None = None
        if aggregate is None:
            assert event is not None
            aggregate = (str(event.originator_id), event.originator_version)
        self.aggregate = aggregate
        """The aggregate's id (as text) and the version this event gave it."""

    @property
    def event(self) -> LedgerEvent:
        if self._event is None:
            assert self._decode is not None
            self._event = self._decode(self)
        return self._event

    @property
    def stored(self) -> dict[str, Any]:
        """The payload parsed, as stored (possibly by an older class version); do not change it."""
        if self._stored is None:
            self._stored = orjson.loads(self.payload)
        return self._stored

    @property
    def fields(self) -> dict[str, Any]:
        """The event's fields as JSON values (ids and times as text), parsed once for every view."""
        if self._fields is None:
            stored = self.stored if self.payload else None
            if stored is None or stored.get("class_version", 1) != current_version(self.topic):
                stored = self.event.model_dump(mode="json")  # not at hand, or stored by an older version
            self._fields = stored
        return self._fields

    @property
    def occurred_text(self) -> str:
        """Business time as view columns hold it."""
        if self._occurred is None:
            self._occurred = utc_text(self.fields["occurred_at"])
        return self._occurred

    @property
    def recorded_text(self) -> str:
        """Record time as view columns hold it."""
        if self._recorded is None:
            self._recorded = utc_text(self.fields["timestamp"])
        return self._recorded


class Writer:
    """A view's handle on its own tables, inside the transaction that also moves its position."""

    def __init__(self, connection: ViewConnection, generation: int) -> None:
        self.connection = connection
        self.generation = generation

    def table(self, table: Table) -> str:
        return table.physical(self.generation)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.connection.execute(statement, params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self.connection.executemany(statement, rows)

    def upsert(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows, replacing any row with the same key (the view's rows are not the ledger's)."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in table.key)
        placeholders = ", ".join("?" * len(columns))
        self.executemany(
            f"INSERT INTO {self.table(table)} ({', '.join(columns)}) VALUES ({placeholders}) "
            f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {updates}",
            rows,
        )

    def increment(self, table: Table, counts: Mapping[tuple[Any, ...], int]) -> None:
        """Add `counts` (keyed by the table's key columns) to its counter column, creating rows as needed."""
        name = self.table(table)
        placeholders = ", ".join("?" * (len(table.key) + 1))
        self.executemany(
            f"INSERT INTO {name} ({', '.join(table.key)}, {table.counter}) VALUES ({placeholders}) "
            + table.adding(name),
            [(*key, count) for key, count in sorted(counts.items())],
        )


class View:
    """A read model built from the log; subclasses declare tables and apply batches of events."""

    name: ClassVar[str]
    schema_version: ClassVar[int] = 1
    """Bump when the tables or their meaning change: the view is then rebuilt from the log."""
    tables: ClassVar[tuple[Table, ...]]
    topics: ClassVar[frozenset[str] | None] = None
    """The event topics this view reads; None for all."""
    shareable: ClassVar[bool] = True
    """Whether a rebuild may build it in shares of aggregates (`projections.shares`)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        """Change the view's rows for these events (already filtered to `topics`)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop anything held in memory between batches: a batch failed and will be replayed."""
