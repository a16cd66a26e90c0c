"""Commands on joint meetings: convene, study cases (deciding owner, responsibility, deadline), conclude."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from domain.case import Case
from domain.errors import InvalidArgument, NotAllowed
from domain.ledger.core import LedgerCore, command
from domain.ledger.work import Work
from domain.meeting import Meeting
from domain.registry import Unit
from domain.values import UnitKind


class MeetingCommands(LedgerCore):
    """One meeting, four links (一会四联)."""

    @command
    def convene_meeting(
        self,
        work: Work,
        unit_id: UUID,
        chair_id: UUID,
        attendee_ids: frozenset[UUID] = frozenset(),
        meeting_id: UUID | None = None,
    ) -> UUID:
        """Convene a joint meeting of a territory's government, chaired by one of its leaders."""
        unit = work.peek(Unit, unit_id)
        if unit.kind is not UnitKind.GOVERNMENT:
            raise InvalidArgument(
                "joint meetings are convened by a territory's party committee and government"
            )
        if not work.actor.covers(unit):
            raise NotAllowed("a meeting is convened within the actor's jurisdiction")
        chair = work.resolve_cadre(chair_id)
        if chair.scope.id != unit.id or not chair.posting.is_leader:
            raise InvalidArgument("the chair must be a leader serving in the territory holding the meeting")
        for attendee_id in attendee_ids:
            work.resolve_cadre(attendee_id)
        meeting = Meeting.convene(
            work.stamp,
            work.new_id("meeting", meeting_id),
            unit.id,
            unit.level,
            chair.id,
            chaired_by_principal=unit.head_id == chair.id,
            attendee_ids=attendee_ids,
        )
        return work.create(meeting).id

    @command
    def study_case(
        self,
        work: Work,
        meeting_id: UUID,
        case_id: UUID,
        owning_leader_id: UUID,
        responsible_cadre_id: UUID,
        due: date,
    ) -> UUID:
        """Study a case at the meeting (研判): appoint its owning leader, responsible person and deadline."""
        meeting = work.target(Meeting, meeting_id)
        assert meeting.unit_id is not None
        meeting_unit = work.peek(Unit, meeting.unit_id)
        case = work.get(Case, case_id)
        assert case.unit_id is not None
        case.check_recusal(work.actor.id, work.actor.units_served)
        if not work.actor.covers(meeting_unit) or meeting_unit.id not in work.peek(Unit, case.unit_id).path:
            raise NotAllowed("a meeting studies cases held within its own territory")
        leader = work.resolve_cadre(owning_leader_id)
        person = work.resolve_cadre(responsible_cadre_id)
        if meeting_unit.id not in person.unit.path:
            raise NotAllowed("the responsible unit must lie within the meeting's territory")
        work.due(due)
        meeting.study_case(work.stamp, case.id, leader.id, person.unit_id, person.id, due)
        case.study_at_meeting(work.stamp, meeting.id, due, work.case_deadlines(case))
        if case.owning_leader_id != leader.id:
            case.appoint_owning_leader(work.stamp, leader.appointee(), meeting.id)
        if (case.unit_id, case.responsible_cadre_id) != (person.unit_id, person.id):
            case.assign_responsibility(work.stamp, person.appointee(), meeting.id)
        return meeting.id

    @command
    def conclude_meeting(self, work: Work, meeting_id: UUID) -> UUID:
        """Conclude the meeting; the narrative is its minutes."""
        meeting = work.target(Meeting, meeting_id)
        assert meeting.unit_id is not None
        if not work.actor.covers(work.peek(Unit, meeting.unit_id)):
            raise NotAllowed("a meeting is concluded within the actor's jurisdiction")
        meeting.conclude(work.stamp)
        return meeting.id
