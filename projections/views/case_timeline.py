"""`case_timeline`: every event of every case, flattened for display, with correction links both ways."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from domain.case import Case
from domain.catalogue import event_classes
from domain.events import LedgerEvent
from projections.columns import as_json
from projections.view import Envelope, Table, View, Writer

CORRECTED = Case.Corrected.TOPIC
COMMON = set(LedgerEvent.model_fields) | {"originator_topic"}
COLUMNS = (
    "case_id",
    "version",
    "position",
    "type",
    "actor_id",
    "actor_unit_id",
    "occurred_at",
    "recorded_at",
    "narrative",
    "evidence",
    "details",
    "corrects",
    "corrected_by",
)

CASE_TIMELINE = Table(
    "case_timeline",
    "case_id TEXT NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL, type TEXT NOT NULL, "
    "actor_id TEXT NOT NULL, actor_unit_id TEXT NOT NULL, occurred_at TEXT NOT NULL, "
    "recorded_at TEXT NOT NULL, narrative TEXT NOT NULL, evidence TEXT NOT NULL, details TEXT NOT NULL, "
    "corrects BIGINT, corrected_by TEXT NOT NULL",
    key=("case_id", "version"),
    indexes=(("position",), ("actor_id", "occurred_at")),
)


class CaseTimelineView(View):
    """Each case's history as display rows: who, from which unit, when it happened and was recorded, why."""

    name = "case_timeline"
    schema_version = 1
    tables = (CASE_TIMELINE,)
    topics = frozenset(event.TOPIC for event in event_classes(Case))

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        rows: dict[tuple[str, int], list[Any]] = {}
        for envelope in batch:
            row = timeline_row(envelope)
            rows[(row[0], row[1])] = row
        for envelope in batch:
            if envelope.topic == CORRECTED:
                case_id, version = envelope.aggregate
                self._link(writer, rows, case_id, envelope.fields["corrects"], version)
        writer.upsert(CASE_TIMELINE, COLUMNS, list(rows.values()))

    def _link(
        self, writer: Writer, rows: dict[tuple[str, int], list[Any]], case_id: str, corrected: int, by: int
    ) -> None:
        """Note on the corrected row that a later version corrects it."""
        key = (case_id, corrected)
        if key not in rows:
            table = writer.table(CASE_TIMELINE)
            found = writer.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE case_id = ? AND version = ?", key
            )
            rows[key] = list(found[0])
        row = rows[key]
        row[-1] = as_json(sorted({*orjson.loads(row[-1]), by}))


def timeline_row(envelope: Envelope) -> list[Any]:
    """The display row of one event, from its stored JSON when at hand (no decoding needed)."""
    stored = envelope.fields
    aggregate_id, version = envelope.aggregate
    details = {k: v for k, v in stored.items() if k not in COMMON}
    return [
        aggregate_id,
        version,
        envelope.position,
        envelope.topic.rpartition(".")[2],
        stored["actor_id"],
        stored["actor_unit_id"],
        envelope.occurred_text,
        envelope.recorded_text,
        stored["narrative"],
        as_json(stored.get("evidence", [])),
        as_json(details),
        stored.get("corrects") if envelope.topic == CORRECTED else None,
        as_json([]),
    ]
