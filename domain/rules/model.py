"""Deadline rule sets: per jurisdiction, versioned, calendar or working days per rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from domain.errors import InvalidArgument
from domain.rules.calendar import WorkCalendar
from domain.values import Value

JURISDICTION_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})*$"


class RuleName(StrEnum):
    """The statutory periods a rule set defines (see docs/deadlines.md)."""

    FORWARD = "forward"  # 转送/交办, from registration (Art. 22)
    ACCEPTANCE_NOTICE = "acceptance_notice"  # 受理告知, from receipt (Art. 23)
    OBJECTION = "objection"  # 异议 to an assignment, from the assignment (Art. 23)
    REPLY = "reply"  # 处理意见书, from acceptance (Arts. 32, 34)
    REPLY_ASSIGNED = "reply_assigned"  # reply to a case assigned by a higher bureau
    EXTENSION = "extension"  # the most an approved extension may add (Art. 34)
    FIRST_REVIEW_REQUEST = "first_review_request"  # 复查 request, from the reply (Art. 35)
    FIRST_REVIEW_ANSWER = "first_review_answer"  # from the request (Art. 35)
    SECOND_REVIEW_REQUEST = "second_review_request"  # 复核 request, from the first review (Art. 36)
    SECOND_REVIEW_ANSWER = "second_review_answer"  # from the request (Art. 36)
    SUPERVISION_ANSWER = "supervision_answer"  # written report on a supervision order (Art. 40)


REQUIRED_RULES = frozenset(RuleName) - {RuleName.REPLY_ASSIGNED, RuleName.SUPERVISION_ANSWER}


class Period(Value):
    """A number of days, counted as calendar days or as working days."""

    days: int = Field(ge=0, le=3650)
    count: Literal["calendar", "working"] = "calendar"
    article: str | None = None


class RuleRef(Value):
    """Names one version of one jurisdiction's rule set."""

    jurisdiction: str = Field(pattern=JURISDICTION_PATTERN)
    version: int = Field(ge=1)

    def __str__(self) -> str:
        return f"{self.jurisdiction}@{self.version}"


class RuleSet(Value):
    """One version of the deadline rules of one jurisdiction."""

    jurisdiction: str = Field(pattern=JURISDICTION_PATTERN)
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    effective_from: date
    timezone: str = "Asia/Shanghai"
    calendar: str = Field(default="CN", pattern=JURISDICTION_PATTERN)
    periods: dict[RuleName, Period]
    roll_past_holidays: bool = True
    """A calendar-day period ending on a non-working day ends on the next working day."""
    hearing_time_excluded: bool = True
    """Days spent in a hearing during a review do not count against its answer period."""
    note: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> RuleSet:
        missing = sorted(REQUIRED_RULES - set(self.periods))
        if missing:
            raise ValueError(f"rule set lacks periods {missing}")
        return self

    @property
    def ref(self) -> RuleRef:
        return RuleRef(jurisdiction=self.jurisdiction, version=self.version)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        """The date of `moment` in this jurisdiction."""
        return moment.astimezone(self.zone).date()

    def period(self, rule: RuleName) -> Period:
        if rule is RuleName.REPLY_ASSIGNED and rule not in self.periods:
            rule = RuleName.REPLY
        try:
            return self.periods[rule]
        except KeyError:
            raise InvalidArgument(f"rule set {self.ref} defines no {rule.value} period") from None

    def due(self, rule: RuleName, start: datetime | date, calendar: WorkCalendar) -> date:
        """The last day on which the step governed by `rule` is on time."""
        return self.add(self.period(rule), start, calendar)

    def add(self, period: Period, start: datetime | date, calendar: WorkCalendar) -> date:
        """`start` plus `period`, counted as the period says (the start day is not counted)."""
        first = self.local_date(start) if isinstance(start, datetime) else start
        if period.count == "working":
            return calendar.add_working_days(first, period.days)
        end = first + timedelta(days=period.days)
        return calendar.next_working_day(end) if self.roll_past_holidays else end

    def extend(self, due: date, days: int, calendar: WorkCalendar) -> date:
        """Push `due` by `days`, counted like the extension period."""
        return self.add(self.period(RuleName.EXTENSION).model_copy(update={"days": days}), due, calendar)

    def is_on_time(self, moment: datetime, due: date) -> bool:
        """Whether `moment` falls on or before the due date, in local time."""
        return self.local_date(moment) <= due


def jurisdiction_chain(code: str) -> list[str]:
    """`CN-HA-ZK` → [`CN-HA-ZK`, `CN-HA`, `CN`]: most specific first."""
    parts = code.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
