"""Commands of discipline inspectors: open an inquiry, record findings and sanctions, close it."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from domain.case import Case
from domain.errors import InvalidArgument, NotAllowed
from domain.inquiry import Inquiry
from domain.ledger.core import LedgerCore, command
from domain.ledger.work import Work
from domain.registry import Cadre, Unit
from domain.values import EventRef, Obligation, Role, SanctionKind


class InquiryCommands(LedgerCore):
    """Responsibility tracing (责任倒查) and sanctions (追责问责)."""

    @command
    def open_inquiry(
        self,
        work: Work,
        case_ids: frozenset[UUID] = frozenset(),
        cadre_ids: frozenset[UUID] = frozenset(),
        inquiry_id: UUID | None = None,
    ) -> UUID:
        """Open an inquiry into cases and/or cadres within the inspector's jurisdiction."""
        work.actor.require(Role.INSPECTOR, "open an inquiry")
        self._check_all_covered(work, case_ids, cadre_ids)
        inquiry = Inquiry.open(work.stamp, work.new_id("inquiry", inquiry_id), case_ids, cadre_ids)
        return work.create(inquiry).id

    @command
    def record_finding(
        self,
        work: Work,
        inquiry_id: UUID,
        cadre_id: UUID,
        obligation: Obligation,
        proof: tuple[EventRef, ...],
        case_id: UUID | None = None,
    ) -> UUID:
        """Record which obligation a cadre breached, citing the events that prove it."""
        work.actor.require(Role.INSPECTOR, "record findings")
        inquiry = work.target(Inquiry, inquiry_id)
        self._check_covered(work, self._last_unit(work, cadre_id))
        if case_id is not None:
            case = work.peek(Case, case_id)
            assert case.unit_id is not None
            self._check_covered(work, case.unit_id)
        for ref in proof:
            self._check_exists(ref)
        inquiry.record_finding(work.stamp, cadre_id, obligation, case_id, proof)
        return inquiry.id

    @command
    def record_sanction(self, work: Work, inquiry_id: UUID, finding_no: int, kind: SanctionKind) -> UUID:
        """Record a sanction imposed for a finding."""
        work.actor.require(Role.INSPECTOR, "record sanctions")
        inquiry = work.target(Inquiry, inquiry_id)
        if finding_no in inquiry.findings:
            self._check_covered(work, self._last_unit(work, inquiry.findings[finding_no]))
        inquiry.record_sanction(work.stamp, finding_no, kind)
        return inquiry.id

    @command
    def close_inquiry(self, work: Work, inquiry_id: UUID) -> UUID:
        """Close the inquiry; the narrative is its conclusion."""
        work.actor.require(Role.INSPECTOR, "close inquiries")
        inquiry = work.target(Inquiry, inquiry_id)
        self._check_all_covered(work, inquiry.case_ids, inquiry.cadre_ids)
        inquiry.close(work.stamp)
        return inquiry.id

    def _check_exists(self, ref: EventRef) -> None:
        if not self.recorder.select_events(ref.aggregate_id, gt=ref.version - 1, lte=ref.version):
            raise InvalidArgument(f"no event {ref.aggregate_id} v{ref.version} to cite")

    @staticmethod
    def _last_unit(work: Work, cadre_id: UUID) -> UUID:
        """Where the cadre served at occurred_at, or last served if they have since left service."""
        cadre = work.peek(Cadre, cadre_id)
        posting = cadre.posting_at(work.occurred_at) or cadre.posting
        return posting.unit_id

    def _check_all_covered(self, work: Work, case_ids: Iterable[UUID], cadre_ids: Iterable[UUID]) -> None:
        """Every case's unit and every cadre's (last) unit lies within the actor's jurisdiction."""
        for case_id in case_ids:
            case = work.peek(Case, case_id)
            assert case.unit_id is not None
            self._check_covered(work, case.unit_id)
        for cadre_id in cadre_ids:
            self._check_covered(work, self._last_unit(work, cadre_id))

    @staticmethod
    def _check_covered(work: Work, unit_id: UUID) -> None:
        if not work.actor.covers(work.peek(Unit, unit_id)):
            raise NotAllowed("inquiries look into cases and cadres within the inspector's jurisdiction")
