"""The Ledger application: one method per command, each applied once and atomically."""

from domain.ledger.core import CommandResult
from domain.ledger.credentials import CredentialCommands
from domain.ledger.disputes import DisputeCommands
from domain.ledger.inquiries import InquiryCommands
from domain.ledger.meetings import MeetingCommands
from domain.ledger.petitioners import PetitionerCommands
from domain.ledger.registry import RegistryCommands
from domain.ledger.work import CommandContext


class Ledger(
    RegistryCommands,
    DisputeCommands,
    MeetingCommands,
    InquiryCommands,
    PetitionerCommands,
    CredentialCommands,
):
    """Duty Ledger's write side: every cadre action an immutable event."""

    name = "DutyLedger"


__all__ = ["CommandContext", "CommandResult", "Ledger"]
