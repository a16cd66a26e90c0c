"""An API key as the ledger knows it: who issued it, whom it acts as, what it reads, who revoked it.

A key's secret (and its hash) never enters an event: the key table (`api.keys`) holds those.
These events are the audit of that table, so that whoever records as a cadre can be traced
to a key, and the key to the administrator who issued it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.events import Stamp
from domain.ids import derived_id


def credential_id(key_id: str) -> UUID:
    """The ledger's id of the key `key_id` (the public part of its token)."""
    return derived_id("credential", key_id)


class Credential(LedgerAggregate):
    """An API key issued by an administrator, bound to a principal."""

    TOPIC = "dutyledger:Credential"

    class Event(LedgerAggregate.Event):
        pass

    class Issued(Event, CanInitAggregate[UUID]):
        """An administrator issued an API key; it records as `cadre_id` (the token is not in the event)."""

        TOPIC: ClassVar[str] = "dutyledger:Credential.Issued"
        originator_topic: str
        key_id: str
        kind: str
        cadre_id: UUID | None
        scope_unit_ids: tuple[UUID, ...]
        event_types: tuple[str, ...]
        label: str
        expires_at: datetime | None

        def apply(self, credential: Credential) -> None:
            credential.key_id = self.key_id
            credential.cadre_id = self.cadre_id

    class Revoked(Event):
        """An administrator revoked the key: it works no more."""

        TOPIC: ClassVar[str] = "dutyledger:Credential.Revoked"

        def apply(self, credential: Credential) -> None:
            credential.revoked_at = self.occurred_at

    class Corrected(Event, CorrectedEvent):
        """Never recorded: an issued key is revoked and another issued, not corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Credential.Corrected"

    def __init__(self) -> None:
        self.key_id = ""
        self.cadre_id: UUID | None = None
        self.revoked_at: datetime | None = None

    @classmethod
    def issue(
        cls,
        stamp: Stamp,
        *,
        key_id: str,
        kind: str,
        cadre_id: UUID | None,
        scope_unit_ids: tuple[UUID, ...],
        event_types: tuple[str, ...],
        label: str,
        expires_at: datetime | None,
    ) -> Credential:
        return cls._create(
            cls.Issued,
            id=credential_id(key_id),
            **stamp.fields(),
            key_id=key_id,
            kind=kind,
            cadre_id=cadre_id,
            scope_unit_ids=scope_unit_ids,
            event_types=event_types,
            label=label,
            expires_at=expires_at,
        )

    def revoke(self, stamp: Stamp) -> None:
        if self.revoked_at is not None:
            raise self.refuse("revoke", "revoked already")
        self.trigger_event(self.Revoked, **stamp.fields())
