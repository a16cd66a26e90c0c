"""What every event carries, and the stamp that puts it there.

Each stored event answers: who did it (the authenticated cadre, never a field the
caller types), from which unit (the unit they served in at that time), when it
happened (`occurred_at`, business time) beside when it was recorded (`timestamp`,
the ledger's clock), under which command, in which chain of work, and why
(`narrative`), with optional evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.errors import InvalidArgument, PersonalDataInText
from domain.values import Evidence, personal_data_in

NARRATIVE_MAX = 4000


class LedgerEvent(BaseModel):
    """Fields common to every event in the ledger."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TOPIC: ClassVar[str]

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor_id: UUID
    actor_unit_id: UUID
    occurred_at: datetime
    command_id: str
    correlation_id: str
    narrative: str
    evidence: tuple[Evidence, ...] = ()


def check_free_text(text: str, *, what: str, max_length: int = NARRATIVE_MAX) -> str:
    """Return stripped `text`, refusing empty, over-long or personal-data-bearing text."""
    stripped = text.strip()
    if not stripped:
        raise InvalidArgument(f"{what} is required and must not be blank")
    if len(stripped) > max_length:
        raise InvalidArgument(f"{what} is longer than {max_length} characters")
    found = personal_data_in(stripped)
    if found:
        raise PersonalDataInText(
            f"{what} seems to contain a {found}; petitioner identity belongs in the "
            "identity store, never in the ledger",
            found=found,
        )
    return stripped


@dataclass(frozen=True)
class Stamp:
    """The provenance a command stamps on each event it records."""

    actor_id: UUID
    actor_unit_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    command_id: str
    correlation_id: str
    narrative: str
    evidence: tuple[Evidence, ...] = ()

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for an event's common fields."""
        return {
            "timestamp": self.recorded_at,
            "actor_id": self.actor_id,
            "actor_unit_id": self.actor_unit_id,
            "occurred_at": self.occurred_at,
            "command_id": self.command_id,
            "correlation_id": self.correlation_id,
            "narrative": self.narrative,
            "evidence": self.evidence,
        }
