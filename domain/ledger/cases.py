"""Commands on petition cases: each checks jurisdiction and roles, then asks the case to decide."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from domain.case import Appointee, Case, Intake
from domain.errors import InvalidArgument, NotAllowed, RoleRequired
from domain.ledger.core import LedgerCore, command
from domain.ledger.work import Work
from domain.registry import Cadre, Unit
from domain.values import (
    BureauLevel,
    ClosureKind,
    DeclineReason,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Role,
    Satisfaction,
    action_kind,
)


class CaseCommands(LedgerCore):
    """Intake, responsibility, handling, reply, review, closure and oversight of cases."""

    # --- intake -------------------------------------------------------------------

    @command
    def register_case(
        self,
        work: Work,
        intake: Intake,
        petitioner_id: UUID,
        accused_unit_ids: frozenset[UUID] = frozenset(),
        accused_cadre_ids: frozenset[UUID] = frozenset(),
        repeat_of: UUID | None = None,
        case_id: UUID | None = None,
    ) -> UUID:
        """Register a petition received through any channel; the actor is its first receiver."""
        return self._register(
            work, intake, petitioner_id, accused_unit_ids, accused_cadre_ids, repeat_of, case_id
        )

    @command
    def forward_case(self, work: Work, case_id: UUID, to_unit_id: UUID) -> UUID:
        """Forward (转送) the case to the unit competent to handle it."""
        case = self._case(work, case_id)
        to_unit = work.peek(Unit, to_unit_id)
        case.forward(work.stamp, to_unit.id, work.deadlines_for(to_unit))
        return case.id

    @command
    def assign_case(self, work: Work, case_id: UUID, to_unit_id: UUID, due: date | None = None) -> UUID:
        """Assign (交办) the case to a unit, perhaps with a fixed deadline; the assigner must follow it up."""
        case = self._case(work, case_id)
        to_unit = work.peek(Unit, to_unit_id)
        if not work.actor.covers(to_unit):
            raise NotAllowed("a case can only be assigned to a unit within the assigner's jurisdiction")
        case.assign(work.stamp, to_unit.id, work.deadlines_for(to_unit), work.due(due))
        return case.id

    @command
    def object_to_assignment(self, work: Work, case_id: UUID) -> UUID:
        """Object to an assignment within the objection window; the narrative gives the reasons (异议)."""
        case = self._case(work, case_id)
        case.object_to_assignment(work.stamp, work.case_deadlines(case))
        return case.id

    @command
    def accept_case(self, work: Work, case_id: UUID) -> UUID:
        """Accept the case and tell the petitioner how it will be handled (受理告知)."""
        case = self._case(work, case_id)
        earlier_final = case.repeat_of is not None and work.peek(Case, case.repeat_of).is_final
        assert case.unit_id is not None
        case.accept(work.stamp, work.deadlines_for(work.peek(Unit, case.unit_id)), earlier_final)
        return case.id

    @command
    def decline_case(self, work: Work, case_id: UUID, reason: DeclineReason) -> UUID:
        """Decline the case (不予受理) and tell the petitioner why; the narrative explains."""
        case = self._case(work, case_id)
        case.decline(work.stamp, reason, work.case_deadlines(case))
        return case.id

    # --- responsibility -------------------------------------------------------------

    @command
    def appoint_owning_leader(self, work: Work, case_id: UUID, leader_id: UUID) -> UUID:
        """Appoint a leader to own the case (包案) until it is resolved."""
        case = self._case(work, case_id)
        case.appoint_owning_leader(work.stamp, self._appointee(work, leader_id))
        return case.id

    @command
    def assign_responsibility(self, work: Work, case_id: UUID, cadre_id: UUID) -> UUID:
        """Name the responsible person; their unit becomes the responsible unit."""
        case = self._case(work, case_id)
        person = self._appointee(work, cadre_id)
        if not work.actor.covers(work.peek(Unit, person.unit_id)):
            raise NotAllowed("the responsible unit must lie within your jurisdiction")
        case.assign_responsibility(work.stamp, person)
        return case.id

    @command
    def assign_handler(self, work: Work, case_id: UUID, handler_id: UUID) -> UUID:
        """Assign the cadre who handles the case day to day (承办人)."""
        case = self._case(work, case_id)
        case.assign_handler(work.stamp, self._appointee(work, handler_id))
        return case.id

    # --- handling -----------------------------------------------------------------

    @command
    def record_action(self, work: Work, case_id: UUID, kind: str) -> UUID:
        """Record a handling action (visit, talk, coordination, mediation, aid, or another kind)."""
        case = self._case(work, case_id)
        case.record_action(work.stamp, action_kind(kind))
        return case.id

    @command
    def hold_hearing(self, work: Work, case_id: UUID, days: int) -> UUID:
        """Record a hearing (听证) and the days it took."""
        case = self._case(work, case_id)
        case.hold_hearing(work.stamp, days, work.case_deadlines(case))
        return case.id

    @command
    def extend_deadline(self, work: Work, case_id: UUID, days: int) -> UUID:
        """Extend the reply deadline once, approved by the head of the unit handling the case (延期)."""
        case = self._case(work, case_id)
        assert case.unit_id is not None
        unit = work.peek(Unit, case.unit_id)
        if unit.head_id != work.actor.id:
            raise RoleRequired(f"only the head of {unit.name} may approve an extension (Art. 34)")
        case.extend_deadline(work.stamp, days, work.case_deadlines(case))
        return case.id

    @command
    def issue_reply(self, work: Work, case_id: UUID, outcome: ReplyOutcome) -> UUID:
        """Issue the written reply (处理意见书): support, explain or not support."""
        case = self._case(work, case_id)
        case.issue_reply(work.stamp, outcome, work.case_deadlines(case))
        return case.id

    @command
    def rate_satisfaction(self, work: Work, case_id: UUID, rating: Satisfaction) -> UUID:
        """Record the petitioner's satisfaction with the latest reply."""
        case = self._case(work, case_id)
        case.rate_satisfaction(work.stamp, rating)
        return case.id

    # --- review, closure, finality -------------------------------------------------

    @command
    def request_review(self, work: Work, case_id: UUID, level: ReviewLevel) -> UUID:
        """Record the petitioner's request for first review (复查) or second review (复核)."""
        case = self._case(work, case_id)
        case.request_review(work.stamp, level, work.case_deadlines(case))
        return case.id

    @command
    def decide_review(self, work: Work, case_id: UUID, level: ReviewLevel, outcome: ReviewOutcome) -> UUID:
        """Decide a pending review; the reviewing body sits above the body whose decision it reviews."""
        case = self._case(work, case_id)
        case.require_pending_review(level)
        assert case.unit_id is not None
        below = case.unit_id if level is ReviewLevel.FIRST else case.reviewing_unit_ids[-1]
        if work.actor.scope.id not in work.peek(Unit, below).ancestors:
            raise NotAllowed(
                f"a {level} review is decided by a body above the one whose decision is reviewed"
            )
        case.decide_review(work.stamp, level, outcome, work.actor.scope.id, work.case_deadlines(case))
        return case.id

    @command
    def close_case(self, work: Work, case_id: UUID, closure: ClosureKind) -> UUID:
        """Close the case (办结) after its reply, procedurally or substantively."""
        case = self._case(work, case_id)
        case.close(work.stamp, closure)
        return case.id

    @command
    def end_petition(self, work: Work, case_id: UUID) -> UUID:
        """Record that the petitioner ended the petition (息访息诉): the matter is resolved."""
        case = self._case(work, case_id)
        case.end_petition(work.stamp)
        return case.id

    @command
    def reopen_case(self, work: Work, case_id: UUID) -> UUID:
        """Reopen a decided case by re-examination (回头看); the narrative gives the reason."""
        work.actor.require(Role.REEXAMINER, "reopen a case by re-examination")
        case = self._case(work, case_id)
        assert case.unit_id is not None
        case.reopen(work.stamp, work.deadlines_for(work.peek(Unit, case.unit_id)))
        return case.id

    # --- oversight -----------------------------------------------------------------

    @command
    def record_leapfrog(self, work: Work, case_id: UUID, level: BureauLevel) -> UUID:
        """Record a petition taken above the competent level (越级访), counted against the case's unit."""
        case = self._case(work, case_id)
        case.record_leapfrog(work.stamp, level)
        return case.id

    @command
    def issue_supervision(self, work: Work, case_id: UUID, due: date | None = None) -> UUID:
        """Issue a supervision order (督办) on the case; the handling unit must report back."""
        case = self._case(work, case_id)
        case.issue_supervision(work.stamp, work.due(due), work.case_deadlines(case))
        return case.id

    @command
    def answer_supervision(self, work: Work, case_id: UUID, order_no: int) -> UUID:
        """Report back in writing on a supervision order (the narrative is the report)."""
        case = self._case(work, case_id)
        case.answer_supervision(work.stamp, order_no, work.case_deadlines(case))
        return case.id

    # --- shared steps ----------------------------------------------------------------

    def _register(
        self,
        work: Work,
        intake: Intake,
        petitioner_id: UUID,
        accused_unit_ids: frozenset[UUID],
        accused_cadre_ids: frozenset[UUID],
        repeat_of: UUID | None,
        case_id: UUID | None,
        dispute_id: UUID | None = None,
    ) -> UUID:
        for unit_id in accused_unit_ids:
            work.peek(Unit, unit_id)
        for cadre_id in accused_cadre_ids:
            work.peek(Cadre, cadre_id)
        if repeat_of is not None:
            work.peek(Case, repeat_of)
        if intake.headcount < 1:
            raise InvalidArgument("a petition has at least one petitioner")
        case = Case.register(
            work.stamp,
            work.new_id("case", case_id),
            work.deadlines_for(work.actor.unit),
            intake,
            petitioner_id,
            accused_unit_ids,
            accused_cadre_ids,
            repeat_of,
            dispute_id,
        )
        return work.create(case).id

    @staticmethod
    def _case(work: Work, case_id: UUID) -> Case:
        """The case, if the actor may act on it: in their jurisdiction, and not accused in it."""
        case = work.target(Case, case_id)
        work.check_jurisdiction(case)
        case.check_recusal(work.actor.id, work.actor.units_served)
        return case

    @staticmethod
    def _appointee(work: Work, cadre_id: UUID) -> Appointee:
        return work.resolve_cadre(cadre_id).appointee()
