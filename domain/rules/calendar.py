"""Working-day arithmetic over a holiday calendar that is data, not code."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from pydantic import Field, model_validator

from domain.values import Value


class HolidayYear(Value):
    """One year of a calendar: public holidays and the weekend days worked in lieu (调休)."""

    calendar: str = Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})*$")
    year: int = Field(ge=1990, le=2200)
    holidays: tuple[date, ...]
    workdays: tuple[date, ...] = ()
    source: str | None = None

    @model_validator(mode="after")
    def _dates_in_year(self) -> HolidayYear:
        for day in (*self.holidays, *self.workdays):
            if day.year != self.year:
                raise ValueError(f"{day} is not in {self.year}")
        if set(self.holidays) & set(self.workdays):
            raise ValueError("a day cannot be both a holiday and a workday")
        return self


class WorkCalendar:
    """Tells working days apart: weekdays, minus holidays, plus make-up workdays."""

    def __init__(self, years: Iterable[HolidayYear] = ()) -> None:
        self.holidays: set[date] = set()
        self.workdays: set[date] = set()
        self.years: set[int] = set()
        for year in years:
            self.holidays.update(year.holidays)
            self.workdays.update(year.workdays)
            self.years.add(year.year)

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> date:
        """The date `days` working days after `start` (the start day itself is not counted)."""
        day = start
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day
