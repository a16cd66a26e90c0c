"""Joint petition meetings (联席例会): convened, cases studied and decided, concluded."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidArgument, InvalidTime, InvalidTransition
from domain.events import Stamp
from domain.values import UnitLevel


class Meeting(LedgerAggregate):
    """A party-government joint meeting at city, county or township level ("one meeting, four links")."""

    TOPIC = "dutyledger:Meeting"

    class Event(LedgerAggregate.Event):
        pass

    class Convened(Event, CanInitAggregate[UUID]):
        """A joint meeting was convened, with its chair and attendees."""

        TOPIC: ClassVar[str] = "dutyledger:Meeting.Convened"
        originator_topic: str
        unit_id: UUID
        level: UnitLevel
        chair_id: UUID
        chaired_by_principal: bool
        attendee_ids: tuple[UUID, ...]

        def apply(self, meeting: Meeting) -> None:
            meeting.unit_id = self.unit_id
            meeting.level = self.level
            meeting.chair_id = self.chair_id
            meeting.chaired_by_principal = self.chaired_by_principal
            meeting.attendee_ids = set(self.attendee_ids)
            meeting.convened_at = self.occurred_at

    class CaseStudied(Event):
        """The meeting studied a case (研判) and decided owner, responsibility and deadline."""

        TOPIC: ClassVar[str] = "dutyledger:Meeting.CaseStudied"
        case_id: UUID
        owning_leader_id: UUID
        responsible_unit_id: UUID
        responsible_cadre_id: UUID
        due: date

        def apply(self, meeting: Meeting) -> None:
            meeting.case_ids.append(self.case_id)

    class Concluded(Event):
        """The meeting ended; its minutes are the narrative."""

        TOPIC: ClassVar[str] = "dutyledger:Meeting.Concluded"

        def apply(self, meeting: Meeting) -> None:
            meeting.concluded = True

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier meeting event was corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Meeting.Corrected"

    def __init__(self) -> None:
        self.unit_id: UUID | None = None
        self.level = UnitLevel.COUNTY
        self.chair_id: UUID | None = None
        self.chaired_by_principal = False
        self.attendee_ids: set[UUID] = set()
        self.case_ids: list[UUID] = []
        self.concluded = False
        self.convened_at: datetime | None = None

    @classmethod
    def convene(
        cls,
        stamp: Stamp,
        meeting_id: UUID,
        unit_id: UUID,
        level: UnitLevel,
        chair_id: UUID,
        chaired_by_principal: bool,
        attendee_ids: frozenset[UUID],
    ) -> Meeting:
        if level not in (UnitLevel.CITY, UnitLevel.COUNTY, UnitLevel.TOWNSHIP):
            raise InvalidArgument("joint meetings are held at city, county or township level")
        return cls._create(
            cls.Convened,
            id=meeting_id,
            **stamp.fields(),
            unit_id=unit_id,
            level=level,
            chair_id=chair_id,
            chaired_by_principal=chaired_by_principal,
            attendee_ids=tuple(sorted(attendee_ids | {chair_id})),
        )

    def study_case(
        self,
        stamp: Stamp,
        case_id: UUID,
        owning_leader_id: UUID,
        responsible_unit_id: UUID,
        responsible_cadre_id: UUID,
        due: date,
    ) -> None:
        if self.concluded:
            raise InvalidTransition("the meeting has concluded")
        if case_id in self.case_ids:
            raise InvalidArgument("this meeting already studied the case")
        if self.convened_at and stamp.occurred_at < self.convened_at:
            raise InvalidTime("a case cannot be studied before the meeting was convened")
        self.trigger_event(
            self.CaseStudied,
            **stamp.fields(),
            case_id=case_id,
            owning_leader_id=owning_leader_id,
            responsible_unit_id=responsible_unit_id,
            responsible_cadre_id=responsible_cadre_id,
            due=due,
        )

    def conclude(self, stamp: Stamp) -> None:
        if self.concluded:
            raise InvalidTransition("the meeting has already concluded")
        if self.convened_at and stamp.occurred_at < self.convened_at:
            raise InvalidTime("a meeting cannot conclude before it was convened")
        self.trigger_event(self.Concluded, **stamp.fields())
