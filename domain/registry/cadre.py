"""Cadres: officials who act in the ledger, their postings over time and their roles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidArgument, InvalidTime, InvalidTransition
from domain.events import Stamp
from domain.values import Role, ShortText, Value


class Posting(Value):
    """Where a cadre served from `since`, in what position."""

    since: datetime
    unit_id: UUID
    position: ShortText
    is_leader: bool
    is_principal: bool


class Cadre(LedgerAggregate):
    """An official (干部). Every event records the unit the actor served in *at that time*."""

    TOPIC = "dutyledger:Cadre"
    CORRECTABLE: ClassVar = {"Registered": frozenset({"name"})}

    class Event(LedgerAggregate.Event):
        pass

    class Registered(Event, CanInitAggregate[UUID]):
        """A cadre was registered with a first posting and roles."""

        TOPIC: ClassVar[str] = "dutyledger:Cadre.Registered"
        originator_topic: str
        name: ShortText
        posting: Posting
        roles: tuple[Role, ...]

        def apply(self, cadre: Cadre) -> None:
            cadre.name = self.name
            cadre.postings = [self.posting]
            cadre.roles = frozenset(self.roles)

    class Transferred(Event):
        """The cadre took up a new posting (another unit, position or leadership)."""

        TOPIC: ClassVar[str] = "dutyledger:Cadre.Transferred"
        posting: Posting

        def apply(self, cadre: Cadre) -> None:
            cadre.postings.append(self.posting)

    class RolesChanged(Event):
        """The cadre's roles were changed by an administrator."""

        TOPIC: ClassVar[str] = "dutyledger:Cadre.RolesChanged"
        roles: tuple[Role, ...]

        def apply(self, cadre: Cadre) -> None:
            cadre.roles = frozenset(self.roles)

    class Retired(Event):
        """The cadre left service; they can record nothing after this."""

        TOPIC: ClassVar[str] = "dutyledger:Cadre.Retired"

        def apply(self, cadre: Cadre) -> None:
            cadre.retired_at = self.occurred_at

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier cadre event was corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Cadre.Corrected"

    def __init__(self) -> None:
        self.name = ""
        self.postings: list[Posting] = []
        self.roles: frozenset[Role] = frozenset()
        self.retired_at: datetime | None = None

    @classmethod
    def register(
        cls, stamp: Stamp, cadre_id: UUID, name: str, posting: Posting, roles: frozenset[Role]
    ) -> Cadre:
        return cls._create(
            cls.Registered,
            id=cadre_id,
            **stamp.fields(),
            name=name,
            posting=posting,
            roles=tuple(sorted(roles)),
        )

    @property
    def posting(self) -> Posting:
        """The current posting."""
        return self.postings[-1]

    @property
    def units_served(self) -> frozenset[UUID]:
        """Every unit the cadre has served in, on the record now: a petition against any of them
        accuses the cadre too (Art. 28), wherever and whenever they act (a backdated command
        included: its business time does not take the record back)."""
        return frozenset(posting.unit_id for posting in self.postings)

    def posting_at(self, moment: datetime) -> Posting | None:
        """The posting held at `moment`, or None if not (yet, or any longer) in service."""
        if self.retired_at is not None and moment >= self.retired_at:
            return None
        held = None
        for posting in self.postings:
            if posting.since <= moment:
                held = posting
        return held

    def transfer(self, stamp: Stamp, posting: Posting) -> None:
        self._check_active()
        if posting.since < self.posting.since:
            raise InvalidTime("a transfer cannot take effect before the current posting began")
        current = self.posting.model_copy(update={"since": posting.since})
        if current == posting:
            raise InvalidArgument("the new posting is the same as the current one")
        self.trigger_event(self.Transferred, **stamp.fields(), posting=posting)

    def change_roles(self, stamp: Stamp, roles: frozenset[Role]) -> None:
        self._check_active()
        if roles == self.roles:
            raise InvalidArgument("the cadre already holds exactly these roles")
        self.trigger_event(self.RolesChanged, **stamp.fields(), roles=tuple(sorted(roles)))

    def retire(self, stamp: Stamp) -> None:
        self._check_active()
        if stamp.occurred_at < self.posting.since:
            raise InvalidTime("a cadre cannot retire before their current posting began")
        self.trigger_event(self.Retired, **stamp.fields())

    def _check_active(self) -> None:
        if self.retired_at is not None:
            raise InvalidTransition(f"{self.name} has retired", cadre_id=str(self.id))

    def corrected(self, event_name: str, changes: Mapping[str, Any]) -> None:
        if event_name == "Registered" and "name" in changes:
            self.name = str(changes["name"])
