"""Responsibility tracing (责任倒查): an inspector's inquiry, its findings and sanctions."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidArgument, InvalidTime, InvalidTransition
from domain.events import Stamp
from domain.values import EventRef, Obligation, SanctionKind


class Inquiry(LedgerAggregate):
    """An inspector's review, after the fact, of cases and of the cadres who handled them."""

    TOPIC = "dutyledger:Inquiry"

    class Event(LedgerAggregate.Event):
        pass

    class Opened(Event, CanInitAggregate[UUID]):
        """An inspector opened an inquiry into cases and/or cadres."""

        TOPIC: ClassVar[str] = "dutyledger:Inquiry.Opened"
        originator_topic: str
        case_ids: tuple[UUID, ...]
        cadre_ids: tuple[UUID, ...]

        def apply(self, inquiry: Inquiry) -> None:
            inquiry.case_ids = set(self.case_ids)
            inquiry.cadre_ids = set(self.cadre_ids)
            inquiry.opened_at = self.occurred_at

    class FindingRecorded(Event):
        """A finding: which obligation a cadre breached, proven by which events."""

        TOPIC: ClassVar[str] = "dutyledger:Inquiry.FindingRecorded"
        finding_no: int
        cadre_id: UUID
        obligation: Obligation
        case_id: UUID | None = None
        proof: tuple[EventRef, ...]

        def apply(self, inquiry: Inquiry) -> None:
            inquiry.findings[self.finding_no] = self.cadre_id

    class SanctionRecorded(Event):
        """A sanction (追责问责) imposed on a cadre for a finding."""

        TOPIC: ClassVar[str] = "dutyledger:Inquiry.SanctionRecorded"
        sanction_no: int
        finding_no: int
        cadre_id: UUID
        kind: SanctionKind

        def apply(self, inquiry: Inquiry) -> None:
            inquiry.sanctions += 1

    class Closed(Event):
        """The inquiry was closed; its conclusion is the narrative."""

        TOPIC: ClassVar[str] = "dutyledger:Inquiry.Closed"

        def apply(self, inquiry: Inquiry) -> None:
            inquiry.closed = True

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier inquiry event was corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Inquiry.Corrected"

    def __init__(self) -> None:
        self.case_ids: set[UUID] = set()
        self.cadre_ids: set[UUID] = set()
        self.findings: dict[int, UUID] = {}
        self.sanctions = 0
        self.closed = False
        self.opened_at: datetime | None = None

    @classmethod
    def open(
        cls, stamp: Stamp, inquiry_id: UUID, case_ids: frozenset[UUID], cadre_ids: frozenset[UUID]
    ) -> Inquiry:
        if not case_ids and not cadre_ids:
            raise InvalidArgument("an inquiry looks into at least one case or cadre")
        return cls._create(
            cls.Opened,
            id=inquiry_id,
            **stamp.fields(),
            case_ids=tuple(sorted(case_ids)),
            cadre_ids=tuple(sorted(cadre_ids)),
        )

    def record_finding(
        self,
        stamp: Stamp,
        cadre_id: UUID,
        obligation: Obligation,
        case_id: UUID | None,
        proof: tuple[EventRef, ...],
    ) -> None:
        self._check_open(stamp)
        if case_id is not None and case_id not in self.case_ids and cadre_id not in self.cadre_ids:
            raise InvalidArgument("a finding concerns a case or cadre under this inquiry")
        if case_id is None and cadre_id not in self.cadre_ids:
            raise InvalidArgument("the cadre is not under this inquiry")
        if not proof:
            raise InvalidArgument("a finding must cite the events that prove it")
        self.trigger_event(
            self.FindingRecorded,
            **stamp.fields(),
            finding_no=len(self.findings) + 1,
            cadre_id=cadre_id,
            obligation=obligation,
            case_id=case_id,
            proof=proof,
        )

    def record_sanction(self, stamp: Stamp, finding_no: int, kind: SanctionKind) -> None:
        self._check_open(stamp)
        if finding_no not in self.findings:
            raise InvalidArgument(f"there is no finding {finding_no} in this inquiry")
        self.trigger_event(
            self.SanctionRecorded,
            **stamp.fields(),
            sanction_no=self.sanctions + 1,
            finding_no=finding_no,
            cadre_id=self.findings[finding_no],
            kind=kind,
        )

    def close(self, stamp: Stamp) -> None:
        self._check_open(stamp)
        self.trigger_event(self.Closed, **stamp.fields())

    def _check_open(self, stamp: Stamp) -> None:
        if self.closed:
            raise InvalidTransition("the inquiry is closed")
        if self.opened_at and stamp.occurred_at < self.opened_at:
            raise InvalidTime("this cannot have happened before the inquiry was opened")
