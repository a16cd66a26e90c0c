"""Units: the city → county → township → village hierarchy and the bodies attached to it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidArgument, InvalidTransition
from domain.events import Stamp
from domain.rules.model import JURISDICTION_PATTERN
from domain.values import LEVEL_RANK, UnitKind, UnitLevel


class Unit(LedgerAggregate):
    """A territorial government, or a bureau, department or discipline body attached to one.

    A unit's *scope* is the territory whose cases its cadres may act on: a government's
    scope is itself; an attached body's scope is the government it is attached to.
    """

    TOPIC = "dutyledger:Unit"
    CORRECTABLE: ClassVar = {"Registered": frozenset({"name"})}

    class Event(LedgerAggregate.Event):
        pass

    class Registered(Event, CanInitAggregate[UUID]):
        """A unit was registered in the hierarchy, under its parent and jurisdiction."""

        TOPIC: ClassVar[str] = "dutyledger:Unit.Registered"
        originator_topic: str
        name: str
        level: UnitLevel
        kind: UnitKind
        parent_id: UUID | None
        ancestors: tuple[UUID, ...]
        jurisdiction: str

        def apply(self, unit: Unit) -> None:
            unit.name = self.name
            unit.level = self.level
            unit.kind = self.kind
            unit.parent_id = self.parent_id
            unit.ancestors = self.ancestors
            unit.jurisdiction = self.jurisdiction

    class Renamed(Event):
        """The unit took a new name."""

        TOPIC: ClassVar[str] = "dutyledger:Unit.Renamed"
        name: str

        def apply(self, unit: Unit) -> None:
            unit.name = self.name
            unit.renamed = True

    class HeadAppointed(Event):
        """A cadre became the unit's principal leader (its head, 一把手)."""

        TOPIC: ClassVar[str] = "dutyledger:Unit.HeadAppointed"
        cadre_id: UUID

        def apply(self, unit: Unit) -> None:
            unit.head_id = self.cadre_id

    class HeadVacated(Event):
        """The unit's head left the post."""

        TOPIC: ClassVar[str] = "dutyledger:Unit.HeadVacated"
        cadre_id: UUID

        def apply(self, unit: Unit) -> None:
            unit.head_id = None

    class Corrected(Event, CorrectedEvent):
        """A field of an earlier unit event was corrected."""

        TOPIC: ClassVar[str] = "dutyledger:Unit.Corrected"

    def __init__(self) -> None:
        self.name = ""
        self.level = UnitLevel.CITY
        self.kind = UnitKind.GOVERNMENT
        self.parent_id: UUID | None = None
        self.ancestors: tuple[UUID, ...] = ()
        self.jurisdiction = ""
        self.head_id: UUID | None = None
        self.renamed = False

    @classmethod
    def register(
        cls,
        stamp: Stamp,
        unit_id: UUID,
        name: str,
        level: UnitLevel,
        kind: UnitKind,
        parent: Unit | None,
        jurisdiction: str | None,
    ) -> Unit:
        if parent is None:
            if kind is not UnitKind.GOVERNMENT or jurisdiction is None:
                raise InvalidArgument("the root unit must be a government with a jurisdiction")
        elif kind is UnitKind.GOVERNMENT:
            if LEVEL_RANK[level] <= LEVEL_RANK[parent.level]:
                raise InvalidArgument(f"a {level} government cannot sit under a {parent.level} unit")
            if parent.kind is not UnitKind.GOVERNMENT:
                raise InvalidArgument("governments sit under governments")
        elif parent.kind is not UnitKind.GOVERNMENT or level is not parent.level:
            raise InvalidArgument(f"a {kind} is attached to a government of its own level")
        if kind is not UnitKind.GOVERNMENT and level is UnitLevel.VILLAGE:
            raise InvalidArgument("villages have no attached bodies")
        code = jurisdiction or (parent.jurisdiction if parent else "")
        if not re.fullmatch(JURISDICTION_PATTERN, code):
            raise InvalidArgument(f"jurisdiction {code!r} is not a code like CN or CN-HA")
        return cls._create(
            cls.Registered,
            id=unit_id,
            **stamp.fields(),
            name=name,
            level=level,
            kind=kind,
            parent_id=parent.id if parent else None,
            ancestors=parent.path if parent else (),
            jurisdiction=code,
        )

    @property
    def path(self) -> tuple[UUID, ...]:
        """Ancestors from the root, then this unit."""
        return (*self.ancestors, self.id)

    @property
    def scope_id(self) -> UUID:
        """The territory this unit's cadres act on."""
        if self.kind is UnitKind.GOVERNMENT or self.parent_id is None:
            return self.id
        return self.parent_id

    def rename(self, stamp: Stamp, name: str) -> None:
        if name == self.name:
            raise InvalidArgument(f"the unit is already named {name!r}")
        self.trigger_event(self.Renamed, **stamp.fields(), name=name)

    def appoint_head(self, stamp: Stamp, cadre_id: UUID) -> None:
        if self.head_id is not None and self.head_id != cadre_id:
            raise InvalidTransition(
                f"{self.name} already has a head; transfer them out first",
                head_id=str(self.head_id),
            )
        if self.head_id != cadre_id:
            self.trigger_event(self.HeadAppointed, **stamp.fields(), cadre_id=cadre_id)

    def vacate_head(self, stamp: Stamp, cadre_id: UUID) -> None:
        if self.head_id == cadre_id:
            self.trigger_event(self.HeadVacated, **stamp.fields(), cadre_id=cadre_id)

    def corrected(self, event_name: str, changes: Mapping[str, Any]) -> None:
        if "name" in changes and event_name == "Registered" and not self.renamed:
            self.name = str(changes["name"])
