"""The rule book: every deadline rule set and holiday calendar the ledger has used."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import CanInitAggregate

from domain.aggregate import CorrectedEvent, LedgerAggregate
from domain.errors import InvalidArgument, NotFound
from domain.events import Stamp
from domain.ids import LEDGER_NAMESPACE
from domain.rules.calendar import HolidayYear, WorkCalendar
from domain.rules.deadlines import Deadlines
from domain.rules.model import RuleRef, RuleSet, jurisdiction_chain


class RuleBook(LedgerAggregate):
    """One per ledger: rule sets are published here, never edited; a case cites the version it used."""

    TOPIC = "dutyledger:RuleBook"
    ID: ClassVar[UUID] = uuid5(LEDGER_NAMESPACE, "rulebook")

    class Event(LedgerAggregate.Event):
        pass

    class Opened(Event, CanInitAggregate[UUID]):
        """The ledger's rule book was opened when the ledger was established."""

        TOPIC: ClassVar[str] = "dutyledger:RuleBook.Opened"
        originator_topic: str

        def apply(self, book: RuleBook) -> None:
            pass

    class RuleSetPublished(Event):
        """A new version of a jurisdiction's deadline rules was published."""

        TOPIC: ClassVar[str] = "dutyledger:RuleBook.RuleSetPublished"
        rule_set: RuleSet

        def apply(self, book: RuleBook) -> None:
            book.rule_sets.setdefault(self.rule_set.jurisdiction, []).append(self.rule_set)

    class HolidaysPublished(Event):
        """A year of public holidays and make-up workdays was published for a calendar."""

        TOPIC: ClassVar[str] = "dutyledger:RuleBook.HolidaysPublished"
        holidays: HolidayYear

        def apply(self, book: RuleBook) -> None:
            book.holiday_years.setdefault(self.holidays.calendar, {})[self.holidays.year] = self.holidays
            book.calendars.pop(self.holidays.calendar, None)

    class Corrected(Event, CorrectedEvent):
        """An earlier rule book entry was corrected (kept for symmetry; nothing is correctable)."""

        TOPIC: ClassVar[str] = "dutyledger:RuleBook.Corrected"

    def __init__(self) -> None:
        self.rule_sets: dict[str, list[RuleSet]] = {}
        self.holiday_years: dict[str, dict[int, HolidayYear]] = {}
        self.calendars: dict[str, WorkCalendar] = {}

    @classmethod
    def open(cls, stamp: Stamp) -> RuleBook:
        return cls._create(cls.Opened, id=cls.ID, **stamp.fields())

    def publish_rule_set(self, stamp: Stamp, rule_set: RuleSet) -> None:
        versions = self.rule_sets.get(rule_set.jurisdiction, [])
        expected = len(versions) + 1
        if rule_set.version != expected:
            raise InvalidArgument(
                f"the next version of {rule_set.jurisdiction} rules is {expected}, not {rule_set.version}"
            )
        if versions and rule_set.effective_from < versions[-1].effective_from:
            raise InvalidArgument("a new rule set version cannot take effect before the previous one")
        if rule_set.calendar not in self.holiday_years:
            raise InvalidArgument(f"no holiday calendar {rule_set.calendar!r} has been published")
        self.trigger_event(self.RuleSetPublished, **stamp.fields(), rule_set=rule_set)

    def publish_holidays(self, stamp: Stamp, holidays: HolidayYear) -> None:
        known = self.holiday_years.get(holidays.calendar, {}).get(holidays.year)
        if known == holidays:
            raise InvalidArgument(f"{holidays.calendar} {holidays.year} is already published as given")
        self.trigger_event(self.HolidaysPublished, **stamp.fields(), holidays=holidays)

    def rule_set_for(self, jurisdiction: str, at: datetime) -> RuleSet:
        """The rules in force at `at` for `jurisdiction`, the most specific jurisdiction first."""
        for code in jurisdiction_chain(jurisdiction):
            in_force = [r for r in self.rule_sets.get(code, []) if r.effective_from <= r.local_date(at)]
            if in_force:
                return in_force[-1]
        raise NotFound(f"no deadline rules in force for {jurisdiction} at {at.isoformat()}")

    def rule_set(self, ref: RuleRef) -> RuleSet:
        """Exactly the version a case cited."""
        versions = self.rule_sets.get(ref.jurisdiction, [])
        if not 1 <= ref.version <= len(versions):
            raise NotFound(f"no rule set {ref}")
        return versions[ref.version - 1]

    def calendar(self, name: str) -> WorkCalendar:
        if name not in self.calendars:
            self.calendars[name] = WorkCalendar(self.holiday_years.get(name, {}).values())
        return self.calendars[name]

    def deadlines_for(self, jurisdiction: str, at: datetime) -> Deadlines:
        """Due-date arithmetic under the rules in force for `jurisdiction` at `at`."""
        rule_set = self.rule_set_for(jurisdiction, at)
        return Deadlines(rule_set, self.calendar(rule_set.calendar))

    def deadlines(self, ref: RuleRef) -> Deadlines:
        """Due-date arithmetic under exactly the version `ref` names."""
        rule_set = self.rule_set(ref)
        return Deadlines(rule_set, self.calendar(rule_set.calendar))
