"""Deadline rules as data: versioned rule sets per jurisdiction and holiday calendars."""

from domain.rules.calendar import HolidayYear, WorkCalendar
from domain.rules.deadlines import Deadlines
from domain.rules.model import Period, RuleName, RuleRef, RuleSet

__all__ = ["Deadlines", "HolidayYear", "Period", "RuleName", "RuleRef", "RuleSet", "WorkCalendar"]
