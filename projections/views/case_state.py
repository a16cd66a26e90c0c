"""`case_state`: one row per case, its current state, as the `Case` aggregate itself holds it.

The view applies each case event to a `Case` object with the aggregate's own `apply`
code, so the read model can never disagree with the write model about a transition.
Recently touched cases stay in a bounded memory; others are rebuilt from the store.
Whether a deadline is breached *now* is not stored (it would go stale): the row keeps
the due dates and the on-time facts decided when each step happened, and queries
compare them with the ledger's clock (`projections.queries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from domain.case import Case
from domain.catalogue import event_classes
from domain.registry import Unit
from projections.columns import as_flag, as_text, ids_json
from projections.memory import AggregateMemory
from projections.view import Envelope, Table, View, Writer

COLUMNS: dict[str, str] = {
    "case_id": "TEXT NOT NULL",
    "version": "BIGINT NOT NULL",
    "position": "BIGINT NOT NULL",
    "recorded_at": "TEXT NOT NULL",
    "status": "TEXT NOT NULL",
    "channel": "TEXT NOT NULL",
    "reception": "TEXT",
    "category": "TEXT NOT NULL",
    "key_area": "TEXT",
    "key_group": "INTEGER NOT NULL",
    "key_issue": "INTEGER NOT NULL",
    "key_person": "INTEGER NOT NULL",
    "source_level": "TEXT",
    "source_reference": "TEXT",
    "source_due": "TEXT",
    "petitioner_id": "TEXT NOT NULL",
    "headcount": "INTEGER NOT NULL",
    "repeat_of": "TEXT",
    "dispute_id": "TEXT",
    "accused_unit_ids": "TEXT NOT NULL",
    "accused_cadre_ids": "TEXT NOT NULL",
    "registered_at": "TEXT NOT NULL",
    "registering_unit_id": "TEXT NOT NULL",
    "first_receiver_id": "TEXT NOT NULL",
    "unit_id": "TEXT NOT NULL",
    "unit_path": "TEXT NOT NULL",
    "responsible_cadre_id": "TEXT",
    "handler_id": "TEXT",
    "owning_leader_id": "TEXT",
    "assigned_by": "TEXT",
    "forward_due": "TEXT",
    "acceptance_notice_due": "TEXT",
    "notice_at": "TEXT",
    "notice_on_time": "INTEGER",
    "rules": "TEXT",
    "accepted_at": "TEXT",
    "reply_due": "TEXT",
    "extended": "INTEGER NOT NULL",
    "replied_at": "TEXT",
    "reply_no": "INTEGER NOT NULL",
    "reply_outcome": "TEXT",
    "reply_on_time": "INTEGER",
    "rating": "TEXT",
    "review_stage": "TEXT NOT NULL",
    "review_request_until": "TEXT",
    "review_answer_due": "TEXT",
    "final": "INTEGER NOT NULL",
    "closed_at": "TEXT",
    "closure": "TEXT",
    "ended_at": "TEXT",
    "reopen_count": "INTEGER NOT NULL",
    "action_count": "INTEGER NOT NULL",
    "hearing_count": "INTEGER NOT NULL",
    "leapfrog_count": "INTEGER NOT NULL",
    "supervision_orders": "INTEGER NOT NULL",
    "supervision_open": "INTEGER NOT NULL",
    "supervision_next_due": "TEXT",
    "meeting_count": "INTEGER NOT NULL",
    "meeting_due": "TEXT",
}

CASE_STATE = Table(
    "case_state",
    ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items()),
    key=("case_id",),
    indexes=(
        ("status", "registered_at"),
        ("unit_id",),
        ("owning_leader_id",),
        ("registered_at", "case_id"),
        ("category",),
        ("petitioner_id",),
    ),
)


class CaseStateView(View):
    """The current state of every case."""

    name = "case_state"
    schema_version = 2
    tables = (CASE_STATE,)
    topics = frozenset(event.TOPIC for event in event_classes(Case))

    def __init__(self, ledger: Any) -> None:
        super().__init__(ledger)
        self.cases: AggregateMemory[Case] = AggregateMemory(self._replayed)
        self.unit_paths: dict[UUID, str] = {}

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        changed: dict[UUID, tuple[Case, Envelope]] = {}
        for envelope in batch:
            case = self._advance(envelope)
            changed[case.id] = (case, envelope)
        writer.upsert(CASE_STATE, list(COLUMNS), [self.row(case, env) for case, env in changed.values()])

    def forget(self) -> None:
        self.cases.forget()

    def row(self, case: Case, envelope: Envelope) -> tuple[Any, ...]:
        """The case as a row: every column of COLUMNS, in order."""
        intake = case.intake
        open_orders = [o for o in case.supervision.values() if o.answered_at is None]
        open_dues = sorted(o.due for o in open_orders if o.due is not None)
        assert case.unit_id is not None
        assert case.registering_unit_id is not None
        values = {
            "case_id": str(case.id),
            "version": case.version,
            "position": envelope.position,
            "recorded_at": as_text(envelope.event.timestamp),
            "status": case.status.value,
            "channel": intake.channel.value,
            "reception": intake.reception.value if intake.reception else None,
            "category": intake.category,
            "key_area": intake.campaign.key_area.value if intake.campaign.key_area else None,
            "key_group": int(intake.campaign.key_group),
            "key_issue": int(intake.campaign.key_issue),
            "key_person": int(intake.campaign.key_person),
            "source_level": intake.source.assigned_by.value if intake.source.assigned_by else None,
            "source_reference": intake.source.reference,
            "source_due": as_text(intake.source.due),
            "petitioner_id": str(case.petitioner_id),
            "headcount": intake.headcount,
            "repeat_of": as_text(case.repeat_of),
            "dispute_id": as_text(case.dispute_id),
            "accused_unit_ids": ids_json(case.accused_unit_ids),
            "accused_cadre_ids": ids_json(case.accused_cadre_ids),
            "registered_at": as_text(case.registered_at),
            "registering_unit_id": str(case.registering_unit_id),
            "first_receiver_id": str(case.first_receiver_id),
            "unit_id": str(case.unit_id),
            "unit_path": self._unit_path(case.unit_id),
            "responsible_cadre_id": as_text(case.responsible_cadre_id),
            "handler_id": as_text(case.handler_id),
            "owning_leader_id": as_text(case.owning_leader_id),
            "assigned_by": as_text(case.assignment.assigned_by if case.assignment else None),
            "forward_due": as_text(case.forward_due),
            "acceptance_notice_due": as_text(case.acceptance_notice_due),
            "notice_at": as_text(case.notice_at),
            "notice_on_time": as_flag(case.notice_on_time),
            "rules": str(case.rules) if case.rules else None,
            "accepted_at": as_text(case.accepted_at),
            "reply_due": as_text(case.reply_due),
            "extended": int(case.extended),
            "replied_at": as_text(case.replied_at),
            "reply_no": case.reply_no,
            "reply_outcome": case.reply_outcome.value if case.reply_outcome else None,
            "reply_on_time": as_flag(case.reply_on_time),
            "rating": case.rating.value if case.rating else None,
            "review_stage": case.review_stage.value,
            "review_request_until": as_text(case.review_request_until),
            "review_answer_due": as_text(case.review_answer_due),
            "final": int(case.is_final),
            "closed_at": as_text(case.closed_at),
            "closure": case.closure.value if case.closure else None,
            "ended_at": as_text(case.ended_at),
            "reopen_count": case.reopen_count,
            "action_count": case.action_count,
            "hearing_count": case.hearing_count,
            "leapfrog_count": case.leapfrog_count,
            "supervision_orders": len(case.supervision),
            "supervision_open": len(open_orders),
            "supervision_next_due": as_text(open_dues[0]) if open_dues else None,
            "meeting_count": len(case.meeting_ids),
            "meeting_due": as_text(case.meeting_due),
        }
        return tuple(values[column] for column in COLUMNS)

    def _advance(self, envelope: Envelope) -> Case:
        """The case after this event, applied with the aggregate's own code."""
        event = envelope.event
        case = self.cases.before(envelope)
        if case is None:
            case = event.mutate(None)  # type: ignore[attr-defined]
        else:
            event.mutate(case)  # type: ignore[attr-defined]
        assert isinstance(case, Case)
        self.cases.keep(envelope, case)
        return case

    def _replayed(self, case_id: UUID, version: int) -> Case:
        case: Case = self.ledger.repository.get(case_id, version=version)
        return case

    def _unit_path(self, unit_id: UUID) -> str:
        """`/root/…/unit/`: a unit's place in the hierarchy (never changes), for subtree filters."""
        if unit_id not in self.unit_paths:
            unit = self.ledger.cache.get(unit_id)
            assert isinstance(unit, Unit)
            self.unit_paths[unit_id] = "/" + "/".join(str(u) for u in unit.path) + "/"
        return self.unit_paths[unit_id]
