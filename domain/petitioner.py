"""A petitioner's pseudonymous record: that an identity is on file, every read of it, its erasure.

The identity itself (name, phone, ID number, address) never enters an event: it lives in the
identity store (`api.identity`), keyed by the pseudonymous id cases carry. These events are
the audit of that store: who recorded it, who read it for which case and why, who erased it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.events import Stamp


class Petitioner(LedgerAggregate):
    """A petitioner known by a pseudonymous id, whose identity the identity store holds."""

    TOPIC = "dutyledger:Petitioner"

    class Event(LedgerAggregate.Event):
        pass

    class Identified(Event, CanInitAggregate[UUID]):
        """A cadre put the petitioner's identity on file (the identity itself is not in the event)."""

        TOPIC: ClassVar[str] = "dutyledger:Petitioner.Identified"
        originator_topic: str

        def apply(self, petitioner: Petitioner) -> None:
            petitioner.identified_at = self.occurred_at

    class IdentityAccessed(Event):
        """A cadre read the petitioner's identity for a case; the narrative says why."""

        TOPIC: ClassVar[str] = "dutyledger:Petitioner.IdentityAccessed"
        case_id: UUID

        def apply(self, petitioner: Petitioner) -> None:
            petitioner.accesses += 1

    class IdentityErased(Event):
        """An administrator erased the petitioner's identity; cases keep the pseudonymous id."""

        TOPIC: ClassVar[str] = "dutyledger:Petitioner.IdentityErased"

        def apply(self, petitioner: Petitioner) -> None:
            petitioner.erased_at = self.occurred_at

    class Corrected(Event, CorrectedEvent):
        """Never recorded: nothing of a petitioner's record can be corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Petitioner.Corrected"

    def __init__(self) -> None:
        self.identified_at: datetime | None = None
        self.erased_at: datetime | None = None
        self.accesses = 0

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @classmethod
    def identify(cls, stamp: Stamp, petitioner_id: UUID) -> Petitioner:
        return cls._create(cls.Identified, id=petitioner_id, **stamp.fields())

    def access(self, stamp: Stamp, case_id: UUID) -> None:
        if self.erased:
            raise self.refuse("read the identity of", "erased")
        self.trigger_event(self.IdentityAccessed, **stamp.fields(), case_id=case_id)

    def erase(self, stamp: Stamp) -> None:
        if self.erased:
            raise self.refuse("erase", "erased already")
        self.trigger_event(self.IdentityErased, **stamp.fields())
