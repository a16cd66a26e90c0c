"""Commands on petitioners' identities: put on file, read for a case (recorded), erase."""

from __future__ import annotations

from uuid import UUID

from domain.case import Case
from domain.errors import NotFound
from domain.ledger.cases import CaseCommands
from domain.ledger.core import command
from domain.ledger.work import Work
from domain.petitioner import Petitioner
from domain.values import Role


class PetitionerCommands(CaseCommands):
    """The audit trail of the identity store: every identity put on file, read and erased."""

    @command
    def identify_petitioner(self, work: Work, petitioner_id: UUID | None = None) -> UUID:
        """Put a petitioner's identity on file under a new pseudonymous id; the identity is not in it."""
        petitioner = Petitioner.identify(work.stamp, work.new_id("petitioner", petitioner_id))
        return work.create(petitioner).id

    @command
    def access_identity(self, work: Work, case_id: UUID) -> UUID:
        """Read the identity of a case's petitioner: recorded, the narrative giving the reason."""
        case = work.peek(Case, case_id)
        work.check_jurisdiction(case)
        case.check_recusal(work.actor.id, work.actor.units_served)
        assert case.petitioner_id is not None
        try:
            petitioner = work.target(Petitioner, case.petitioner_id)
        except NotFound:
            raise NotFound("no identity is on file for the case's petitioner", kind="Petitioner") from None
        petitioner.access(work.stamp, case.id)
        return petitioner.id

    @command
    def erase_identity(self, work: Work, petitioner_id: UUID) -> UUID:
        """Erase a petitioner's identity (an administrator, the narrative giving the reason)."""
        work.actor.require(Role.ADMINISTRATOR, "erase a petitioner's identity")
        petitioner = work.target(Petitioner, petitioner_id)
        petitioner.erase(work.stamp)
        return petitioner.id
