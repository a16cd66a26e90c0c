"""One rule set joined with its calendar: what aggregates compute due dates with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from domain.rules.calendar import WorkCalendar
from domain.rules.model import RuleName, RuleRef, RuleSet


@dataclass(frozen=True)
class Deadlines:
    """Due-date arithmetic under one version of one jurisdiction's rules."""

    rule_set: RuleSet
    calendar: WorkCalendar

    @property
    def ref(self) -> RuleRef:
        return self.rule_set.ref

    def due(self, rule: RuleName, start: datetime | date) -> date:
        return self.rule_set.due(rule, start, self.calendar)

    def optional_due(self, rule: RuleName, start: datetime | date) -> date | None:
        """Like `due`, but None where the rule set defines no such period."""
        if rule in self.rule_set.periods:
            return self.due(rule, start)
        return None

    def max_days(self, rule: RuleName) -> int:
        return self.rule_set.period(rule).days

    def extend(self, due: date, days: int) -> date:
        return self.rule_set.extend(due, days, self.calendar)

    def on_time(self, moment: datetime, due: date | None) -> bool:
        return due is None or self.rule_set.is_on_time(moment, due)

    def local_date(self, moment: datetime) -> date:
        return self.rule_set.local_date(moment)
