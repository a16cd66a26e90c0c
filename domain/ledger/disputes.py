"""Commands on disputes found at the grassroots: record, mediate, resolve or escalate into a case."""

from __future__ import annotations

from uuid import UUID

from domain.case import Intake
from domain.dispute import Dispute
from domain.errors import InvalidArgument, OutsideJurisdiction
from domain.ledger.cases import CaseCommands
from domain.ledger.core import command
from domain.ledger.work import Work
from domain.registry import Unit
from domain.values import GRASSROOTS, DisputeSource, MediationResult


class DisputeCommands(CaseCommands):
    """Dispute screening (排查矛盾纠纷) as recorded in the responsibility manual."""

    @command
    def record_dispute(
        self,
        work: Work,
        source: DisputeSource,
        category: str,
        parties: int = 2,
        dispute_id: UUID | None = None,
    ) -> UUID:
        """Record a dispute found by screening, a household visit or a report."""
        if work.actor.unit.level not in GRASSROOTS:
            raise InvalidArgument("disputes are recorded by township and village cadres")
        if parties < 1:
            raise InvalidArgument("a dispute has at least one party")
        dispute = Dispute.record(work.stamp, work.new_id("dispute", dispute_id), source, category, parties)
        return work.create(dispute).id

    @command
    def mediate_dispute(self, work: Work, dispute_id: UUID, result: MediationResult) -> UUID:
        """Record a mediation session and its result."""
        dispute = self._dispute(work, dispute_id)
        dispute.mediate(work.stamp, result)
        return dispute.id

    @command
    def resolve_dispute(self, work: Work, dispute_id: UUID) -> UUID:
        """Record that the dispute was resolved locally (就地化解)."""
        dispute = self._dispute(work, dispute_id)
        dispute.resolve(work.stamp)
        return dispute.id

    @command
    def escalate_dispute(
        self,
        work: Work,
        dispute_id: UUID,
        intake: Intake,
        petitioner_id: UUID,
        accused_unit_ids: frozenset[UUID] = frozenset(),
        accused_cadre_ids: frozenset[UUID] = frozenset(),
        case_id: UUID | None = None,
    ) -> UUID:
        """Escalate an unresolved dispute into a petition case, registered by the actor."""
        dispute = self._dispute(work, dispute_id)
        new_case_id = self._register(
            work,
            intake,
            petitioner_id,
            accused_unit_ids,
            accused_cadre_ids,
            None,
            case_id,
            dispute.id,
        )
        dispute.escalate(work.stamp, new_case_id)
        return new_case_id

    @staticmethod
    def _dispute(work: Work, dispute_id: UUID) -> Dispute:
        dispute = work.target(Dispute, dispute_id)
        assert dispute.unit_id is not None
        if not work.actor.covers(work.peek(Unit, dispute.unit_id)):
            raise OutsideJurisdiction("the dispute was recorded outside your jurisdiction")
        return dispute
