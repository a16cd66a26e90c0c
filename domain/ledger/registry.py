"""Commands that establish the ledger and keep its registry: units, cadres, rules, corrections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from domain.aggregate import LedgerAggregate
from domain.errors import AlreadyExists, InvalidArgument, NotAllowed
from domain.events import LedgerEvent
from domain.ledger.core import LedgerCore, command
from domain.ledger.work import Work
from domain.registry import Cadre, Posting, Unit
from domain.rules import HolidayYear, RuleSet
from domain.rules.book import RuleBook
from domain.rules.defaults import packaged_holidays, packaged_rule_sets
from domain.values import Role, UnitKind, UnitLevel


class RegistryCommands(LedgerCore):
    """Establishment, units, cadres, deadline rules, and corrections of any record."""

    @command
    def establish(
        self,
        work: Work,
        root_unit_name: str,
        root_level: UnitLevel,
        jurisdiction: str,
        administrator_name: str,
        administrator_position: str,
        root_unit_id: UUID | None = None,
    ) -> UUID:
        """Found the ledger: its rule book (seeded with packaged rules), root unit and first administrator.

        Answers with the root unit's id.

        The context's actor id becomes the first administrator's cadre id: the only command
        whose actor does not exist before it runs.
        """
        if work.exists(RuleBook.ID):
            raise AlreadyExists("the ledger is already established")
        root_id = work.new_id("unit", root_unit_id)
        stamp = work.stamp_as(work.ctx.actor_id, root_id)
        book = work.add(RuleBook.open(stamp))
        for year in packaged_holidays():
            book.publish_holidays(stamp, year)
        for rule_set in packaged_rule_sets():
            book.publish_rule_set(stamp, rule_set)
        root = work.create(
            Unit.register(stamp, root_id, root_unit_name, root_level, UnitKind.GOVERNMENT, None, jurisdiction)
        )
        posting = Posting(
            since=work.occurred_at,
            unit_id=root.id,
            position=administrator_position,
            is_leader=False,
            is_principal=False,
        )
        work.create(Cadre.register(stamp, work.ctx.actor_id, administrator_name, posting, frozenset(Role)))
        return root.id

    @command
    def register_unit(
        self,
        work: Work,
        name: str,
        level: UnitLevel,
        kind: UnitKind,
        parent_id: UUID,
        jurisdiction: str | None = None,
        unit_id: UUID | None = None,
    ) -> UUID:
        """Add a unit under its parent; it inherits the parent's jurisdiction unless one is given."""
        work.actor.require(Role.ADMINISTRATOR, "register units")
        parent = work.peek(Unit, parent_id)
        unit = Unit.register(
            work.stamp, work.new_id("unit", unit_id), name, level, kind, parent, jurisdiction
        )
        return work.create(unit).id

    @command
    def rename_unit(self, work: Work, unit_id: UUID, name: str) -> UUID:
        """Give a unit a new name."""
        work.actor.require(Role.ADMINISTRATOR, "rename units")
        unit = work.target(Unit, unit_id)
        unit.rename(work.stamp, name)
        return unit.id

    @command
    def register_cadre(
        self,
        work: Work,
        name: str,
        unit_id: UUID,
        position: str,
        is_leader: bool = False,
        is_principal: bool = False,
        roles: frozenset[Role] = frozenset(),
        cadre_id: UUID | None = None,
    ) -> UUID:
        """Register a cadre with a first posting; a principal leader becomes the unit's head."""
        work.actor.require(Role.ADMINISTRATOR, "register cadres")
        posting = self._posting(work, unit_id, position, is_leader, is_principal)
        cadre = work.create(Cadre.register(work.stamp, work.new_id("cadre", cadre_id), name, posting, roles))
        if is_principal:
            work.get(Unit, unit_id).appoint_head(work.stamp, cadre.id)
        return cadre.id

    @command
    def transfer_cadre(
        self,
        work: Work,
        cadre_id: UUID,
        unit_id: UUID,
        position: str,
        is_leader: bool = False,
        is_principal: bool = False,
    ) -> UUID:
        """Post a cadre to a new unit or position; heads are vacated and appointed to match."""
        work.actor.require(Role.ADMINISTRATOR, "transfer cadres")
        cadre = work.target(Cadre, cadre_id)
        before = cadre.posting
        cadre.transfer(work.stamp, self._posting(work, unit_id, position, is_leader, is_principal))
        if before.is_principal:
            work.get(Unit, before.unit_id).vacate_head(work.stamp, cadre.id)
        if is_principal:
            work.get(Unit, unit_id).appoint_head(work.stamp, cadre.id)
        return cadre.id

    @command
    def change_roles(self, work: Work, cadre_id: UUID, roles: frozenset[Role]) -> UUID:
        """Set the roles a cadre holds."""
        work.actor.require(Role.ADMINISTRATOR, "change roles")
        if cadre_id == work.actor.id and Role.ADMINISTRATOR not in roles:
            raise NotAllowed("administrators cannot remove their own administrator role")
        cadre = work.target(Cadre, cadre_id)
        cadre.change_roles(work.stamp, roles)
        return cadre.id

    @command
    def retire_cadre(self, work: Work, cadre_id: UUID) -> UUID:
        """Record that a cadre left service; they can record nothing afterwards."""
        work.actor.require(Role.ADMINISTRATOR, "retire cadres")
        cadre = work.target(Cadre, cadre_id)
        cadre.retire(work.stamp)
        if cadre.posting.is_principal:
            work.get(Unit, cadre.posting.unit_id).vacate_head(work.stamp, cadre.id)
        return cadre.id

    @command
    def publish_rule_set(self, work: Work, rule_set: RuleSet) -> UUID:
        """Publish the next version of a jurisdiction's deadline rules."""
        work.actor.require(Role.ADMINISTRATOR, "publish deadline rules")
        work.target(RuleBook, RuleBook.ID).publish_rule_set(work.stamp, rule_set)
        return RuleBook.ID

    @command
    def publish_holidays(self, work: Work, holidays: HolidayYear) -> UUID:
        """Publish (or re-publish, corrected) a year of a holiday calendar."""
        work.actor.require(Role.ADMINISTRATOR, "publish holiday calendars")
        work.target(RuleBook, RuleBook.ID).publish_holidays(work.stamp, holidays)
        return RuleBook.ID

    @command
    def correct_record(
        self, work: Work, aggregate_id: UUID, corrects: int, changes: Mapping[str, Any]
    ) -> UUID:
        """Correct fields of an earlier event by a new event that cites it; the narrative says why.

        The cadre who recorded the event may correct it; so may an administrator; never one the
        aggregate recuses (a case's accused, Art. 28).
        """
        aggregate = work.target(LedgerAggregate, aggregate_id)
        aggregate.check_recusal(work.actor.id, work.actor.units_served)
        stored = self.events.get(aggregate_id, gt=corrects - 1, lte=corrects)
        original = next(iter(stored), None)
        if not isinstance(original, LedgerEvent):
            raise InvalidArgument(f"version {corrects} does not exist (latest is {aggregate.version})")
        if Role.ADMINISTRATOR not in work.actor.cadre.roles and original.actor_id != work.actor.id:
            raise NotAllowed("only the cadre who recorded an event, or an administrator, may correct it")
        aggregate.correct(work.stamp, original, changes)
        return aggregate.id

    @staticmethod
    def _posting(work: Work, unit_id: UUID, position: str, is_leader: bool, is_principal: bool) -> Posting:
        work.peek(Unit, unit_id)
        return Posting(
            since=work.occurred_at,
            unit_id=unit_id,
            position=position,
            is_leader=is_leader or is_principal,
            is_principal=is_principal,
        )
