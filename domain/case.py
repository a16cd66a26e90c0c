"""The petition case (信访事项): from registration to closure, review, finality and reopening.

Public methods are the commands: they check the case's state, the statutory windows
and recusal, then trigger one past-tense event. Each event's `apply` is the only code
that changes state, so replaying stored events never re-runs today's validation.
Checks that need other aggregates (jurisdiction, roles, unit heads) live in the
`Ledger` application, which passes the facts in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import (
    ConflictOfInterest,
    ExtensionRefused,
    InvalidArgument,
    InvalidTime,
    InvalidTransition,
    MatterFinal,
    OutsideWindow,
)
from domain.events import Stamp
from domain.rules import Deadlines, RuleName, RuleRef
from domain.values import (
    BureauLevel,
    Campaign,
    Channel,
    ClosureKind,
    DeclineReason,
    Reception,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Satisfaction,
    ShortText,
    Slug,
    Source,
    Value,
)


class CaseStatus(StrEnum):
    """Where a case stands in its lifecycle."""

    REGISTERED = "registered"  # awaiting acceptance by the unit now holding it
    ACCEPTED = "accepted"  # being handled
    DECLINED = "declined"
    REPLIED = "replied"
    CLOSED = "closed"


class ReviewStage(StrEnum):
    """How far the petitioner has taken the reply through review."""

    NONE = "none"
    FIRST_REQUESTED = "first_requested"
    FIRST_DECIDED = "first_decided"
    SECOND_REQUESTED = "second_requested"
    SECOND_DECIDED = "second_decided"  # final (终结)


class Intake(Value):
    """What the first receiver recorded about the petition."""

    channel: Channel
    reception: Reception | None = None
    category: ShortText
    campaign: Campaign = Campaign()
    source: Source = Source()
    headcount: int = 1


class SupervisionOrder(Value):
    """A supervision order (督办) and whether it was answered."""

    order_no: int
    issued_by: UUID
    issued_by_unit: UUID
    issued_at: datetime
    due: date | None
    answered_at: datetime | None = None


class Assignment(Value):
    """The open assignment (交办): who assigned it, the objection window, any fixed deadline."""

    assigned_by: UUID
    objection_due: date
    due: date | None = None
    objected: bool = False


@dataclass(frozen=True)
class Appointee:
    """A cadre proposed for a role on the case, as the registry knows them now."""

    cadre_id: UUID
    unit_id: UUID
    served: frozenset[UUID]
    """Every unit the cadre has served in, `unit_id` included (`domain.case.accuses`)."""
    is_leader: bool = False


_NEVER = datetime.min.replace(tzinfo=UTC)


def accuses(
    cadre_ids: Iterable[UUID], unit_ids: Iterable[UUID], cadre_id: UUID, served: Iterable[UUID]
) -> bool:
    """Whether a petition against these cadres and units accuses this cadre, who has served in the
    units `served` (Art. 28): a transfer out of an accused unit does not end the conflict."""
    return cadre_id in set(cadre_ids) or not set(unit_ids).isdisjoint(served)


OPEN = frozenset({CaseStatus.REGISTERED, CaseStatus.ACCEPTED, CaseStatus.REPLIED})
AFTER_REPLY = frozenset({CaseStatus.REPLIED, CaseStatus.CLOSED})


class Case(LedgerAggregate):
    """A petition case and everything every cadre did about it."""

    TOPIC = "dutyledger:Case"
    CORRECTABLE: ClassVar = {
        "Registered": frozenset({"intake"}),
        "ActionRecorded": frozenset({"kind", "occurred_at"}),
        "HearingHeld": frozenset({"occurred_at"}),
        "LeapfrogRecorded": frozenset({"level", "occurred_at"}),
    }

    class Event(LedgerAggregate.Event):
        pass

    class Registered(Event, CanInitAggregate[UUID]):
        """A petition was registered by its first receiver (首接), through some channel."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Registered"
        originator_topic: str
        intake: Intake
        petitioner_id: UUID
        accused_unit_ids: tuple[UUID, ...] = ()
        accused_cadre_ids: tuple[UUID, ...] = ()
        repeat_of: UUID | None = None
        dispute_id: UUID | None = None
        unit_id: UUID
        rules: RuleRef
        forward_due: date
        acceptance_notice_due: date

        def apply(self, case: Case) -> None:
            case.intake = self.intake
            case.petitioner_id = self.petitioner_id
            case.accused_unit_ids = frozenset(self.accused_unit_ids)
            case.accused_cadre_ids = frozenset(self.accused_cadre_ids)
            case.repeat_of = self.repeat_of
            case.dispute_id = self.dispute_id
            case.registered_at = case.moved_at = case.last_transition_at = self.occurred_at
            case.first_receiver_id = self.actor_id
            case.registering_unit_id = case.unit_id = self.unit_id
            case.forward_due = self.forward_due
            case.acceptance_notice_due = self.acceptance_notice_due

    class Forwarded(Event):
        """The case was forwarded (转送) to the unit competent to handle it."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Forwarded"
        to_unit_id: UUID
        rules: RuleRef
        acceptance_notice_due: date

        def apply(self, case: Case) -> None:
            case._move(self.to_unit_id, self.occurred_at, self.acceptance_notice_due)
            case.assignment = None

    class Assigned(Event):
        """The case was assigned (交办) to a unit, which must handle it and report back."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Assigned"
        to_unit_id: UUID
        rules: RuleRef
        acceptance_notice_due: date
        objection_due: date
        due: date | None = None

        def apply(self, case: Case) -> None:
            case._move(self.to_unit_id, self.occurred_at, self.acceptance_notice_due)
            case.assignment = Assignment(
                assigned_by=self.actor_id, objection_due=self.objection_due, due=self.due
            )

    class AssignmentObjected(Event):
        """The assigned unit objected to the assignment, giving its reasons (异议)."""

        TOPIC: ClassVar[str] = "dutyledger:Case.AssignmentObjected"

        def apply(self, case: Case) -> None:
            if case.assignment:
                case.assignment = case.assignment.model_copy(update={"objected": True})

    class Accepted(Event):
        """The receiving unit accepted the petition and told the petitioner (受理告知)."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Accepted"
        rules: RuleRef
        reply_due: date
        notice_on_time: bool

        def apply(self, case: Case) -> None:
            case.notice_at, case.notice_on_time = self.occurred_at, self.notice_on_time
            case.status = CaseStatus.ACCEPTED
            case.rules = self.rules
            case.accepted_at = case.last_transition_at = self.occurred_at
            case.reply_due = self.reply_due
            case.extended = False

    class Declined(Event):
        """The receiving unit did not accept the petition, and said why (不予受理)."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Declined"
        reason: DeclineReason
        notice_on_time: bool

        def apply(self, case: Case) -> None:
            case.notice_at, case.notice_on_time = self.occurred_at, self.notice_on_time
            case.status = CaseStatus.DECLINED
            case.last_transition_at = self.occurred_at

    class OwningLeaderAppointed(Event):
        """A leader was appointed to own the case (包案) until it is resolved."""

        TOPIC: ClassVar[str] = "dutyledger:Case.OwningLeaderAppointed"
        leader_id: UUID
        meeting_id: UUID | None = None

        def apply(self, case: Case) -> None:
            case.owning_leader_id = self.leader_id

    class ResponsibilityAssigned(Event):
        """A responsible unit (责任单位) and responsible person (责任人) were named."""

        TOPIC: ClassVar[str] = "dutyledger:Case.ResponsibilityAssigned"
        unit_id: UUID
        cadre_id: UUID
        meeting_id: UUID | None = None

        def apply(self, case: Case) -> None:
            case.unit_id = self.unit_id
            case.responsible_cadre_id = self.cadre_id

    class HandlerAssigned(Event):
        """A cadre was assigned to handle the case day to day (承办人)."""

        TOPIC: ClassVar[str] = "dutyledger:Case.HandlerAssigned"
        handler_id: UUID

        def apply(self, case: Case) -> None:
            case.handler_id = self.handler_id

    class StudiedAtMeeting(Event):
        """A joint meeting studied the case (研判) and set a deadline for resolving it."""

        TOPIC: ClassVar[str] = "dutyledger:Case.StudiedAtMeeting"
        meeting_id: UUID
        due: date

        def apply(self, case: Case) -> None:
            case.meeting_ids.append(self.meeting_id)
            case.meeting_due = self.due

    class ActionRecorded(Event):
        """A cadre recorded a handling action: a visit, talk, coordination, mediation, aid…"""

        TOPIC: ClassVar[str] = "dutyledger:Case.ActionRecorded"
        kind: Slug

        def apply(self, case: Case) -> None:
            case.action_count += 1

    class HearingHeld(Event):
        """A hearing (听证) was held; review time spent in it is not counted."""

        TOPIC: ClassVar[str] = "dutyledger:Case.HearingHeld"
        days: int
        review_answer_due: date | None = None

        def apply(self, case: Case) -> None:
            case.hearing_count += 1
            if self.review_answer_due is not None:
                case.review_answer_due = self.review_answer_due

    class DeadlineExtended(Event):
        """The unit's head approved a longer reply period, and the petitioner was told why (延期)."""

        TOPIC: ClassVar[str] = "dutyledger:Case.DeadlineExtended"
        days: int
        reply_due: date

        def apply(self, case: Case) -> None:
            case.reply_due = self.reply_due
            case.extended = True

    class ReplyIssued(Event):
        """The unit issued its written reply (处理意见书): support, explain or not support."""

        TOPIC: ClassVar[str] = "dutyledger:Case.ReplyIssued"
        outcome: ReplyOutcome
        reply_no: int
        review_request_until: date | None
        on_time: bool

        def apply(self, case: Case) -> None:
            case.reply_on_time = self.on_time
            case.status = CaseStatus.REPLIED
            case.replied_at = case.last_transition_at = self.occurred_at
            case.reply_outcome = self.outcome
            case.reply_no = self.reply_no
            case.review_request_until = self.review_request_until
            case.rating = None

    class SatisfactionRated(Event):
        """The petitioner's satisfaction with the reply was recorded."""

        TOPIC: ClassVar[str] = "dutyledger:Case.SatisfactionRated"
        rating: Satisfaction
        reply_no: int

        def apply(self, case: Case) -> None:
            case.rating = self.rating

    class ReviewRequested(Event):
        """The petitioner asked for a first review (复查) or second review (复核) of the reply."""

        TOPIC: ClassVar[str] = "dutyledger:Case.ReviewRequested"
        level: ReviewLevel
        answer_due: date

        def apply(self, case: Case) -> None:
            case.review_stage = _REQUESTED[self.level]
            case.review_answer_due = self.answer_due
            case.review_request_until = None

    class ReviewDecided(Event):
        """The reviewing body decided: upheld, modified, or overturned for handling anew."""

        TOPIC: ClassVar[str] = "dutyledger:Case.ReviewDecided"
        level: ReviewLevel
        outcome: ReviewOutcome
        reviewing_unit_id: UUID
        review_request_until: date | None
        reply_due: date | None
        on_time: bool

        def apply(self, case: Case) -> None:
            case.review_stage = _DECIDED[self.level]
            case.review_answer_due = None
            case.review_request_until = self.review_request_until
            case.reviewing_unit_ids.append(self.reviewing_unit_id)
            if self.outcome is ReviewOutcome.OVERTURNED and self.reply_due is not None:
                case.status = CaseStatus.ACCEPTED
                case.last_transition_at = self.occurred_at
                case.reply_due = self.reply_due
                case.extended = False

    class Closed(Event):
        """The case was closed (办结), procedurally or substantively."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Closed"
        closure: ClosureKind

        def apply(self, case: Case) -> None:
            case.status = CaseStatus.CLOSED
            case.closure = self.closure
            case.closed_at = self.occurred_at
            case.last_transition_at = self.occurred_at

    class PetitionEnded(Event):
        """The petitioner ended the petition (息访息诉): the matter is resolved."""

        TOPIC: ClassVar[str] = "dutyledger:Case.PetitionEnded"

        def apply(self, case: Case) -> None:
            case.ended = True
            case.ended_at = self.occurred_at

    class Reopened(Event):
        """A re-examination (回头看) reopened the case for handling anew, not bound by earlier conclusions."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Reopened"
        rules: RuleRef
        reply_due: date

        def apply(self, case: Case) -> None:
            case.status = CaseStatus.ACCEPTED
            case.last_transition_at = self.occurred_at
            case.rules = self.rules
            case.reply_due = self.reply_due
            case.extended = False
            case.review_stage = ReviewStage.NONE
            case.review_request_until = case.review_answer_due = None
            case.ended = False
            case.ended_at = case.closed_at = None
            case.closure = None
            case.reply_on_time = None
            case.rating = None
            case.reopen_count += 1

    class LeapfrogRecorded(Event):
        """The petitioner took the matter above the competent level (越级访), counted against the unit."""

        TOPIC: ClassVar[str] = "dutyledger:Case.LeapfrogRecorded"
        level: BureauLevel
        attributed_unit_id: UUID

        def apply(self, case: Case) -> None:
            case.leapfrog_count += 1

    class SupervisionIssued(Event):
        """A supervision order (督办) was issued; the unit must report back in writing."""

        TOPIC: ClassVar[str] = "dutyledger:Case.SupervisionIssued"
        order_no: int
        due: date | None

        def apply(self, case: Case) -> None:
            case.supervision[self.order_no] = SupervisionOrder(
                order_no=self.order_no,
                issued_by=self.actor_id,
                issued_by_unit=self.actor_unit_id,
                issued_at=self.occurred_at,
                due=self.due,
            )

    class SupervisionAnswered(Event):
        """The supervised unit reported back on a supervision order."""

        TOPIC: ClassVar[str] = "dutyledger:Case.SupervisionAnswered"
        order_no: int
        on_time: bool

        def apply(self, case: Case) -> None:
            order = case.supervision[self.order_no]
            case.supervision[self.order_no] = order.model_copy(update={"answered_at": self.occurred_at})

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier case event was corrected; the narrative says why."""

        TOPIC: ClassVar[str] = "dutyledger:Case.Corrected"

    def __init__(self) -> None:
        self.status = CaseStatus.REGISTERED
        self.intake = Intake(channel=Channel.VISIT, category="unknown")
        self.petitioner_id: UUID | None = None
        self.accused_unit_ids: frozenset[UUID] = frozenset()
        self.accused_cadre_ids: frozenset[UUID] = frozenset()
        self.repeat_of: UUID | None = None
        self.dispute_id: UUID | None = None
        self.registered_at = self.moved_at = self.last_transition_at = _NEVER
        self.first_receiver_id: UUID | None = None
        self.registering_unit_id: UUID | None = None
        self.notice_at: datetime | None = None
        self.notice_on_time: bool | None = None
        self.reply_on_time: bool | None = None
        self.closed_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.unit_id: UUID | None = None
        self.responsible_cadre_id: UUID | None = None
        self.handler_id: UUID | None = None
        self.owning_leader_id: UUID | None = None
        self.forward_due: date | None = None
        self.acceptance_notice_due: date | None = None
        self.assignment: Assignment | None = None
        self.rules: RuleRef | None = None
        self.accepted_at: datetime | None = None
        self.reply_due: date | None = None
        self.extended = False
        self.replied_at: datetime | None = None
        self.reply_outcome: ReplyOutcome | None = None
        self.reply_no = 0
        self.rating: Satisfaction | None = None
        self.review_stage = ReviewStage.NONE
        self.review_request_until: date | None = None
        self.review_answer_due: date | None = None
        self.reviewing_unit_ids: list[UUID] = []
        self.closure: ClosureKind | None = None
        self.ended = False
        self.reopen_count = 0
        self.action_count = 0
        self.hearing_count = 0
        self.leapfrog_count = 0
        self.meeting_ids: list[UUID] = []
        self.meeting_due: date | None = None
        self.supervision: dict[int, SupervisionOrder] = {}

    # --- intake -----------------------------------------------------------------

    @classmethod
    def register(
        cls,
        stamp: Stamp,
        case_id: UUID,
        deadlines: Deadlines,
        intake: Intake,
        petitioner_id: UUID,
        accused_unit_ids: frozenset[UUID] = frozenset(),
        accused_cadre_ids: frozenset[UUID] = frozenset(),
        repeat_of: UUID | None = None,
        dispute_id: UUID | None = None,
    ) -> Case:
        if stamp.actor_id in accused_cadre_ids:
            raise ConflictOfInterest("a cadre cannot register a petition that accuses themselves")
        return cls._create(
            cls.Registered,
            id=case_id,
            **stamp.fields(),
            intake=intake,
            petitioner_id=petitioner_id,
            accused_unit_ids=tuple(sorted(accused_unit_ids)),
            accused_cadre_ids=tuple(sorted(accused_cadre_ids)),
            repeat_of=repeat_of,
            dispute_id=dispute_id,
            unit_id=stamp.actor_unit_id,
            rules=deadlines.ref,
            forward_due=deadlines.due(RuleName.FORWARD, stamp.occurred_at),
            acceptance_notice_due=deadlines.due(RuleName.ACCEPTANCE_NOTICE, stamp.occurred_at),
        )

    def forward(self, stamp: Stamp, to_unit_id: UUID, deadlines: Deadlines) -> None:
        self._check_move(stamp, "forward", to_unit_id)
        self.trigger_event(
            self.Forwarded,
            **stamp.fields(),
            to_unit_id=to_unit_id,
            rules=deadlines.ref,
            acceptance_notice_due=deadlines.due(RuleName.ACCEPTANCE_NOTICE, stamp.occurred_at),
        )

    def assign(self, stamp: Stamp, to_unit_id: UUID, deadlines: Deadlines, due: date | None) -> None:
        self._check_move(stamp, "assign", to_unit_id)
        if due is not None and due < deadlines.local_date(stamp.occurred_at):
            raise InvalidTime("an assignment's deadline cannot be before the assignment")
        self.trigger_event(
            self.Assigned,
            **stamp.fields(),
            to_unit_id=to_unit_id,
            rules=deadlines.ref,
            acceptance_notice_due=deadlines.due(RuleName.ACCEPTANCE_NOTICE, stamp.occurred_at),
            objection_due=deadlines.due(RuleName.OBJECTION, stamp.occurred_at),
            due=due,
        )

    def object_to_assignment(self, stamp: Stamp, deadlines: Deadlines) -> None:
        self._check_status("object to the assignment of", {CaseStatus.REGISTERED})
        self._check_transition_time(stamp)
        if self.assignment is None:
            raise InvalidTransition(
                "only an assignment (交办) can be objected to; this case was not assigned"
            )
        if self.assignment.objected:
            raise InvalidTransition("the assignment was already objected to")
        if stamp.actor_unit_id != self.unit_id:
            raise InvalidArgument("only the assigned unit can object to its assignment")
        if not deadlines.on_time(stamp.occurred_at, self.assignment.objection_due):
            raise OutsideWindow(
                f"objections were due by {self.assignment.objection_due}",
                due=str(self.assignment.objection_due),
            )
        self.trigger_event(self.AssignmentObjected, **stamp.fields())

    def accept(self, stamp: Stamp, deadlines: Deadlines, earlier_case_final: bool) -> None:
        self._check_status("accept", {CaseStatus.REGISTERED})
        self._check_transition_time(stamp)
        self._check_not_accused_unit(stamp.actor_unit_id, "accept")
        if earlier_case_final:
            raise MatterFinal(
                "the same matter was finally decided after second review; decline it or "
                "have it re-examined (回头看)",
                repeat_of=str(self.repeat_of),
            )
        assigned = self.intake.source.is_assigned or self.assignment is not None
        reply_due = deadlines.due(RuleName.REPLY_ASSIGNED if assigned else RuleName.REPLY, stamp.occurred_at)
        for fixed in (self.intake.source.due, self.assignment.due if self.assignment else None):
            if fixed is not None:
                reply_due = min(reply_due, fixed)
        self.trigger_event(
            self.Accepted,
            **stamp.fields(),
            rules=deadlines.ref,
            reply_due=reply_due,
            notice_on_time=deadlines.on_time(stamp.occurred_at, self.acceptance_notice_due),
        )

    def decline(self, stamp: Stamp, reason: DeclineReason, deadlines: Deadlines) -> None:
        self._check_status("decline", {CaseStatus.REGISTERED})
        self._check_transition_time(stamp)
        on_time = deadlines.on_time(stamp.occurred_at, self.acceptance_notice_due)
        self.trigger_event(self.Declined, **stamp.fields(), reason=reason, notice_on_time=on_time)

    # --- responsibility -------------------------------------------------------------

    def appoint_owning_leader(self, stamp: Stamp, leader: Appointee, meeting_id: UUID | None = None) -> None:
        self._check_status("appoint an owning leader for", OPEN)
        self._check_after_registration(stamp)
        self._check_recusal(leader, "owning leader")
        if not leader.is_leader:
            raise InvalidArgument("an owning leader (包案领导) must hold a leadership position")
        if leader.cadre_id == self.owning_leader_id:
            raise InvalidArgument("this leader already owns the case")
        self.trigger_event(
            self.OwningLeaderAppointed,
            **stamp.fields(),
            leader_id=leader.cadre_id,
            meeting_id=meeting_id,
        )

    def assign_responsibility(self, stamp: Stamp, person: Appointee, meeting_id: UUID | None = None) -> None:
        self._check_status("name the responsible person for", OPEN)
        self._check_after_registration(stamp)
        self._check_recusal(person, "responsible person")
        if person.unit_id in self.accused_unit_ids:
            raise ConflictOfInterest("the accused unit cannot be the responsible unit")
        if (person.unit_id, person.cadre_id) == (self.unit_id, self.responsible_cadre_id):
            raise InvalidArgument("this cadre and unit are already responsible")
        self.trigger_event(
            self.ResponsibilityAssigned,
            **stamp.fields(),
            unit_id=person.unit_id,
            cadre_id=person.cadre_id,
            meeting_id=meeting_id,
        )

    def assign_handler(self, stamp: Stamp, handler: Appointee) -> None:
        self._check_status("assign a handler to", OPEN)
        self._check_after_registration(stamp)
        self._check_recusal(handler, "handler")
        if handler.cadre_id == self.handler_id:
            raise InvalidArgument("this cadre already handles the case")
        self.trigger_event(self.HandlerAssigned, **stamp.fields(), handler_id=handler.cadre_id)

    def study_at_meeting(self, stamp: Stamp, meeting_id: UUID, due: date, deadlines: Deadlines) -> None:
        self._check_status("study", OPEN)
        self._check_after_registration(stamp)
        if due < deadlines.local_date(stamp.occurred_at):
            raise InvalidTime("a meeting's deadline cannot be before the meeting")
        self.trigger_event(self.StudiedAtMeeting, **stamp.fields(), meeting_id=meeting_id, due=due)

    # --- handling ------------------------------------------------------------------

    def record_action(self, stamp: Stamp, kind: str) -> None:
        if self.status is CaseStatus.DECLINED:
            raise self.refuse("record an action on", self.status)
        self._check_after_registration(stamp)
        self.trigger_event(self.ActionRecorded, **stamp.fields(), kind=kind)

    def hold_hearing(self, stamp: Stamp, days: int, deadlines: Deadlines) -> None:
        in_review = self.review_stage in _REQUESTED.values()
        if self.status is not CaseStatus.ACCEPTED and not in_review:
            raise self.refuse("hold a hearing on", self.status)
        self._check_after_registration(stamp)
        if not 1 <= days <= 90:
            raise InvalidArgument("a hearing lasts between 1 and 90 days")
        review_due = None
        if in_review and self.review_answer_due and deadlines.rule_set.hearing_time_excluded:
            review_due = self.review_answer_due + timedelta(days=days)
        self.trigger_event(self.HearingHeld, **stamp.fields(), days=days, review_answer_due=review_due)

    def extend_deadline(self, stamp: Stamp, days: int, deadlines: Deadlines) -> None:
        self._check_status("extend the deadline of", {CaseStatus.ACCEPTED})
        self._check_transition_time(stamp)
        assert self.reply_due is not None
        if self.extended:
            raise ExtensionRefused("the reply deadline may be extended only once")
        most = deadlines.max_days(RuleName.EXTENSION)
        if not 1 <= days <= most:
            raise ExtensionRefused(f"an extension is 1 to {most} days under {deadlines.ref}", max_days=most)
        if not deadlines.on_time(stamp.occurred_at, self.reply_due):
            raise OutsideWindow(f"the reply was due by {self.reply_due}; an extension must come before that")
        self.trigger_event(
            self.DeadlineExtended,
            **stamp.fields(),
            days=days,
            reply_due=deadlines.extend(self.reply_due, days),
        )

    def issue_reply(self, stamp: Stamp, outcome: ReplyOutcome, deadlines: Deadlines) -> None:
        self._check_status("reply to", {CaseStatus.ACCEPTED})
        self._check_transition_time(stamp)
        window: date | None = None
        if self.review_stage is ReviewStage.NONE:
            window = deadlines.due(RuleName.FIRST_REVIEW_REQUEST, stamp.occurred_at)
        elif self.review_stage is ReviewStage.FIRST_DECIDED:
            window = deadlines.due(RuleName.SECOND_REVIEW_REQUEST, stamp.occurred_at)
        self.trigger_event(
            self.ReplyIssued,
            **stamp.fields(),
            outcome=outcome,
            reply_no=self.reply_no + 1,
            review_request_until=window,
            on_time=deadlines.on_time(stamp.occurred_at, self.reply_due),
        )

    def rate_satisfaction(self, stamp: Stamp, rating: Satisfaction) -> None:
        self._check_status("rate the reply of", AFTER_REPLY)
        if self.rating is not None:
            raise InvalidTransition("this reply was already rated")
        self._check_time(stamp, self.replied_at, "the reply")
        self.trigger_event(self.SatisfactionRated, **stamp.fields(), rating=rating, reply_no=self.reply_no)

    # --- review, closure, finality ---------------------------------------------------

    def request_review(self, stamp: Stamp, level: ReviewLevel, deadlines: Deadlines) -> None:
        self._check_status("request a review of", AFTER_REPLY)
        self._check_not_final()
        expected = {
            ReviewStage.NONE: ReviewLevel.FIRST,
            ReviewStage.FIRST_DECIDED: ReviewLevel.SECOND,
        }
        if expected.get(self.review_stage) is not level:
            raise InvalidTransition(
                f"a {level} review cannot be requested when the review stage is {self.review_stage}; "
                "first review comes before second review, one at a time",
                review_stage=str(self.review_stage),
            )
        self._check_transition_time(stamp)
        until = self.review_request_until
        if until is None or not deadlines.on_time(stamp.occurred_at, until):
            raise OutsideWindow(f"a {level} review had to be requested by {until}", until=str(until))
        answer = RuleName.FIRST_REVIEW_ANSWER if level is ReviewLevel.FIRST else RuleName.SECOND_REVIEW_ANSWER
        self.trigger_event(
            self.ReviewRequested,
            **stamp.fields(),
            level=level,
            answer_due=deadlines.due(answer, stamp.occurred_at),
        )

    def decide_review(
        self,
        stamp: Stamp,
        level: ReviewLevel,
        outcome: ReviewOutcome,
        reviewing_unit_id: UUID,
        deadlines: Deadlines,
    ) -> None:
        self.require_pending_review(level)
        self._check_transition_time(stamp)
        next_window = None
        if level is ReviewLevel.FIRST and outcome is not ReviewOutcome.OVERTURNED:
            next_window = deadlines.due(RuleName.SECOND_REVIEW_REQUEST, stamp.occurred_at)
        reply_due = None
        if outcome is ReviewOutcome.OVERTURNED:
            reply_due = deadlines.due(RuleName.REPLY, stamp.occurred_at)
        self.trigger_event(
            self.ReviewDecided,
            **stamp.fields(),
            level=level,
            outcome=outcome,
            reviewing_unit_id=reviewing_unit_id,
            review_request_until=next_window,
            reply_due=reply_due,
            on_time=deadlines.on_time(stamp.occurred_at, self.review_answer_due),
        )

    def close(self, stamp: Stamp, closure: ClosureKind) -> None:
        self._check_status("close", {CaseStatus.REPLIED})
        if self.review_stage in _REQUESTED.values():
            raise InvalidTransition("a case under review cannot be closed until the review is decided")
        self._check_transition_time(stamp)
        self.trigger_event(self.Closed, **stamp.fields(), closure=closure)

    def end_petition(self, stamp: Stamp) -> None:
        self._check_status("end the petition of", AFTER_REPLY)
        if self.ended:
            raise InvalidTransition("the petition has already ended")
        self._check_time(stamp, self.replied_at, "the reply")
        self.trigger_event(self.PetitionEnded, **stamp.fields())

    def reopen(self, stamp: Stamp, deadlines: Deadlines) -> None:
        self._check_status("reopen", {CaseStatus.REPLIED, CaseStatus.CLOSED, CaseStatus.DECLINED})
        self._check_transition_time(stamp)
        self.trigger_event(
            self.Reopened,
            **stamp.fields(),
            rules=deadlines.ref,
            reply_due=deadlines.due(RuleName.REPLY, stamp.occurred_at),
        )

    # --- oversight -----------------------------------------------------------------

    def record_leapfrog(self, stamp: Stamp, level: BureauLevel) -> None:
        self._check_after_registration(stamp)
        assert self.unit_id is not None
        self.trigger_event(
            self.LeapfrogRecorded, **stamp.fields(), level=level, attributed_unit_id=self.unit_id
        )

    def issue_supervision(self, stamp: Stamp, due: date | None, deadlines: Deadlines) -> None:
        self._check_status("supervise", OPEN)
        self._check_after_registration(stamp)
        if stamp.actor_unit_id == self.unit_id:
            raise InvalidArgument("a unit cannot supervise its own handling of a case")
        if due is None:
            due = deadlines.optional_due(RuleName.SUPERVISION_ANSWER, stamp.occurred_at)
        elif due < deadlines.local_date(stamp.occurred_at):
            raise InvalidTime("a supervision order cannot be due before it is issued")
        self.trigger_event(
            self.SupervisionIssued, **stamp.fields(), order_no=len(self.supervision) + 1, due=due
        )

    def answer_supervision(self, stamp: Stamp, order_no: int, deadlines: Deadlines) -> None:
        order = self.supervision.get(order_no)
        if order is None:
            raise InvalidArgument(f"there is no supervision order {order_no} on this case")
        if order.answered_at is not None:
            raise InvalidTransition(f"supervision order {order_no} was already answered")
        if stamp.actor_unit_id == order.issued_by_unit:
            raise InvalidArgument("a supervision order is answered by the supervised unit, not by its issuer")
        self._check_time(stamp, order.issued_at, "the supervision order")
        self.trigger_event(
            self.SupervisionAnswered,
            **stamp.fields(),
            order_no=order_no,
            on_time=deadlines.on_time(stamp.occurred_at, order.due),
        )

    # --- facts for the ledger --------------------------------------------------------

    def require_pending_review(self, level: ReviewLevel) -> None:
        if self.review_stage is not _REQUESTED[level]:
            raise InvalidTransition(f"no {level} review is pending", review_stage=str(self.review_stage))

    @property
    def is_final(self) -> bool:
        """Finally decided after second review (终结): only a re-examination reopens it."""
        return self.review_stage is ReviewStage.SECOND_DECIDED

    def involves(self, cadre_id: UUID) -> bool:
        """Whether the case was assigned to this cadre (handler, responsible person, owning leader)."""
        return cadre_id in (self.handler_id, self.responsible_cadre_id, self.owning_leader_id)

    def is_accused(self, cadre_id: UUID, served: Iterable[UUID]) -> bool:
        return accuses(self.accused_cadre_ids, self.accused_unit_ids, cadre_id, served)

    def corrected(self, event_name: str, changes: Mapping[str, Any]) -> None:
        if event_name == "Registered" and "intake" in changes:
            self.intake = Intake.model_validate(changes["intake"])

    # --- checks ----------------------------------------------------------------------

    def _move(self, to_unit_id: UUID, at: datetime, notice_due: date) -> None:
        self.unit_id = to_unit_id
        self.moved_at = at
        self.acceptance_notice_due = notice_due
        self.responsible_cadre_id = None
        self.handler_id = None

    def _check_move(self, stamp: Stamp, action: str, to_unit_id: UUID) -> None:
        self._check_status(action, {CaseStatus.REGISTERED})
        self._check_time(stamp, self.moved_at, "the case reached its current unit")
        if to_unit_id == self.unit_id:
            raise InvalidArgument(f"cannot {action} a case to the unit that already holds it")
        if to_unit_id in self.accused_unit_ids:
            raise ConflictOfInterest(
                f"cannot {action} a case to the unit it accuses: materials must not reach the accused"
            )

    def _check_status(self, action: str, allowed: set[CaseStatus] | frozenset[CaseStatus]) -> None:
        if self.status not in allowed:
            raise self.refuse(action, self.status)

    def _check_not_final(self) -> None:
        if self.is_final:
            raise MatterFinal("the matter was finally decided after second review (终结)")

    def _check_not_accused_unit(self, unit_id: UUID, action: str) -> None:
        if unit_id in self.accused_unit_ids:
            raise ConflictOfInterest(f"an accused unit cannot {action} the case against it")

    def _check_recusal(self, appointee: Appointee, role: str) -> None:
        if self.is_accused(appointee.cadre_id, appointee.served):
            raise ConflictOfInterest(
                f"an accused cadre, or a cadre of an accused unit, cannot be the {role} (Art. 28)",
                cadre_id=str(appointee.cadre_id),
            )

    def _check_transition_time(self, stamp: Stamp) -> None:
        self._check_time(
            stamp, max(self.last_transition_at, self.moved_at), "the case's last change of status"
        )

    def _check_after_registration(self, stamp: Stamp) -> None:
        self._check_time(stamp, self.registered_at, "the case was registered")

    def check_recusal(self, actor_id: UUID, served: frozenset[UUID]) -> None:
        if self.is_accused(actor_id, served):
            raise ConflictOfInterest(
                "an accused cadre, or a cadre of an accused unit, cannot act on the case against them "
                "(Art. 28)"
            )

    def business_start(self) -> tuple[datetime, str]:
        return self.registered_at, "the case was registered"

    def _check_time(self, stamp: Stamp, earliest: datetime | None, what: str) -> None:
        if earliest is not None and stamp.occurred_at < earliest:
            raise InvalidTime(f"this cannot have happened before {what} ({earliest.isoformat()})")


_REQUESTED = {
    ReviewLevel.FIRST: ReviewStage.FIRST_REQUESTED,
    ReviewLevel.SECOND: ReviewStage.SECOND_REQUESTED,
}
_DECIDED = {
    ReviewLevel.FIRST: ReviewStage.FIRST_DECIDED,
    ReviewLevel.SECOND: ReviewStage.SECOND_DECIDED,
}
