"""`event_log`: the sequencer. Every stored event gets a log index 0, 1, 2, … without gaps.

The log index is the public position (feed, SSE, webhooks): notification ids may have gaps
(a rolled-back insert burns one), so integrators are never shown them.

When an id is safe to sequence: as soon as a reader can see it. The runner reads the log in
id order after the last id it sequenced, and an id never becomes visible after a higher one:
SQLite has one writer at a time, and the PostgreSQL recorder takes an EXCLUSIVE lock on the
events table for each insert and holds it to commit, so ids commit in id order (see
`projections.runner`). A gap seen once is a gap for ever. The index of an event is its rank
among the stored events by id, so a rebuild gives every event the same index again, and a
follower is never shown a reordering. The batch's rows and the view's position move in one
transaction, so the sequence is contiguous whatever fails or how many runners follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from projections.view import Envelope, Table, View, Writer

if TYPE_CHECKING:
    from domain.ledger import Ledger

ATTRIBUTES = ("recorded_at", "occurred_at", "actor_id", "actor_unit_id", "correlation_id", "command_id")
"""What every event carries beside its own fields, as stored (times as the payload spells them), so
the feed can envelope an event without parsing its payload."""
FIELDS = ("timestamp", "occurred_at", "actor_id", "actor_unit_id", "correlation_id", "command_id")
"""The payload's names for `ATTRIBUTES`."""
COLUMNS = ("log_index", "position", "aggregate_id", "version", "topic", *ATTRIBUTES)

EVENT_LOG = Table(
    "event_log",
    "log_index BIGINT NOT NULL, position BIGINT NOT NULL, aggregate_id TEXT NOT NULL, "
    "version BIGINT NOT NULL, topic TEXT NOT NULL, recorded_at TEXT NOT NULL, occurred_at TEXT NOT NULL, "
    "actor_id TEXT NOT NULL, actor_unit_id TEXT NOT NULL, correlation_id TEXT NOT NULL, "
    "command_id TEXT NOT NULL",
    key=("log_index",),
    indexes=(
        ("position",),
        ("topic", "log_index"),
        ("actor_unit_id", "log_index"),
        ("aggregate_id", "version"),
    ),
)


EVENT_LOG_UNITS = Table(
    "event_log_units",
    "unit_id TEXT NOT NULL, path TEXT NOT NULL",
    key=("unit_id",),
)
"""Each unit's path from the root (`/<id>/…/<id>/`), for feeds limited to unit subtrees. It is
written in the batch that registers the unit, so it is there before any event of that unit."""

UNIT_REGISTERED = "dutyledger:Unit.Registered"


def unit_path(fields: dict[str, object]) -> str:
    """The path of a unit from its registration's fields."""
    ancestors = fields["ancestors"]
    assert isinstance(ancestors, list)
    return "/" + "/".join([*map(str, ancestors), str(fields["originator_id"])]) + "/"


class EventLogView(View):
    """The public sequence: the log index of every stored event, with what feed filters select on."""

    name = "event_log"
    schema_version = 1
    tables = (EVENT_LOG, EVENT_LOG_UNITS)
    shareable = False
    """An index is a rank over the whole log: it cannot be built in shares of aggregates."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self._next: int | None = None

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        if self._next is None:
            ((found,),) = writer.execute(f"SELECT MAX(log_index) FROM {writer.table(EVENT_LOG)}")
            self._next = 0 if found is None else int(found) + 1
        first = self._next
        rows = [
            (
                first + offset,
                envelope.position,
                envelope.aggregate[0],
                envelope.aggregate[1],
                envelope.topic,
                *(envelope.stored[name] for name in FIELDS),  # as stored, even by an older class version
            )
            for offset, envelope in enumerate(batch)
        ]
        marks = ", ".join("?" * len(COLUMNS))
        writer.executemany(
            f"INSERT INTO {writer.table(EVENT_LOG)} ({', '.join(COLUMNS)}) VALUES ({marks})", rows
        )
        units = [
            (envelope.aggregate[0], unit_path({**envelope.fields, "originator_id": envelope.aggregate[0]}))
            for envelope in batch
            if envelope.topic == UNIT_REGISTERED
        ]
        if units:
            writer.upsert(EVENT_LOG_UNITS, ("unit_id", "path"), units)
        self._next = first + len(rows)

    def forget(self) -> None:
        self._next = None
