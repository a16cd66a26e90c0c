"""Disputes found by grassroots screening (排查矛盾纠纷): mediated, resolved or escalated."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidTime
from domain.events import Stamp
from domain.values import DisputeSource, MediationResult, ShortText


class DisputeStatus(StrEnum):
    """Where a dispute stands."""

    OPEN = "open"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class Dispute(LedgerAggregate):
    """A dispute a grassroots cadre recorded in the responsibility manual (责任信访工作手册)."""

    TOPIC = "dutyledger:Dispute"
    CORRECTABLE: ClassVar = {"Recorded": frozenset({"category", "source", "parties"})}

    class Event(LedgerAggregate.Event):
        pass

    class Recorded(Event, CanInitAggregate[UUID]):
        """A grassroots cadre recorded a dispute found by screening, a visit or a report."""

        TOPIC: ClassVar[str] = "dutyledger:Dispute.Recorded"
        originator_topic: str
        unit_id: UUID
        source: DisputeSource
        category: ShortText
        parties: int

        def apply(self, dispute: Dispute) -> None:
            dispute.unit_id = self.unit_id
            dispute.category = self.category
            dispute.recorded_at = self.occurred_at

    class Mediated(Event):
        """A mediation session was held on the dispute."""

        TOPIC: ClassVar[str] = "dutyledger:Dispute.Mediated"
        result: MediationResult

        def apply(self, dispute: Dispute) -> None:
            dispute.mediations += 1

    class Resolved(Event):
        """The dispute was resolved at the grassroots (就地化解)."""

        TOPIC: ClassVar[str] = "dutyledger:Dispute.Resolved"

        def apply(self, dispute: Dispute) -> None:
            dispute.status = DisputeStatus.RESOLVED

    class Escalated(Event):
        """The dispute could not be resolved locally and was registered as a petition case."""

        TOPIC: ClassVar[str] = "dutyledger:Dispute.Escalated"
        case_id: UUID

        def apply(self, dispute: Dispute) -> None:
            dispute.status = DisputeStatus.ESCALATED
            dispute.case_id = self.case_id

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier dispute event was corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Dispute.Corrected"

    def __init__(self) -> None:
        self.status = DisputeStatus.OPEN
        self.unit_id: UUID | None = None
        self.category = ""
        self.recorded_at: datetime | None = None
        self.mediations = 0
        self.case_id: UUID | None = None

    @classmethod
    def record(
        cls, stamp: Stamp, dispute_id: UUID, source: DisputeSource, category: str, parties: int
    ) -> Dispute:
        return cls._create(
            cls.Recorded,
            id=dispute_id,
            **stamp.fields(),
            unit_id=stamp.actor_unit_id,
            source=source,
            category=category,
            parties=parties,
        )

    def mediate(self, stamp: Stamp, result: MediationResult) -> None:
        self._check_open(stamp, "mediate")
        self.trigger_event(self.Mediated, **stamp.fields(), result=result)

    def resolve(self, stamp: Stamp) -> None:
        self._check_open(stamp, "resolve")
        self.trigger_event(self.Resolved, **stamp.fields())

    def escalate(self, stamp: Stamp, case_id: UUID) -> None:
        self._check_open(stamp, "escalate")
        self.trigger_event(self.Escalated, **stamp.fields(), case_id=case_id)

    def _check_open(self, stamp: Stamp, action: str) -> None:
        if self.status is not DisputeStatus.OPEN:
            raise self.refuse(action, self.status)
        if self.recorded_at and stamp.occurred_at < self.recorded_at:
            raise InvalidTime("this cannot have happened before the dispute was recorded")
