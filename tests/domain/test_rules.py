"""Deadline rules are data: holiday calendars, per-jurisdiction rule sets, versions in force by date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.case import Case
from domain.errors import ExtensionRefused, InvalidArgument, NotFound, RoleRequired
from domain.rules import HolidayYear, Period, RuleName, RuleRef, RuleSet, WorkCalendar
from domain.rules.book import RuleBook
from domain.rules.defaults import packaged_holidays, packaged_rule_sets
from tests.support import World


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    return WorkCalendar(packaged_holidays())


@pytest.fixture(scope="module")
def national() -> RuleSet:
    return next(r for r in packaged_rule_sets() if r.jurisdiction == "CN")


def beijing(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """`hour` o'clock in Beijing (UTC+8), as a UTC datetime."""
    return datetime(year, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


# --- the work calendar ------------------------------------------------------------------


def test_the_packaged_calendar_covers_the_years_the_ledger_serves(calendar: WorkCalendar) -> None:
    assert {2024, 2025, 2026} <= calendar.years


@pytest.mark.parametrize(
    ("day", "working"),
    [
        pytest.param(date(2026, 3, 6), True, id="a-friday"),
        pytest.param(date(2026, 3, 7), False, id="a-saturday"),
        pytest.param(date(2026, 3, 8), False, id="a-sunday"),
        pytest.param(date(2026, 10, 1), False, id="national-day-thursday"),
        pytest.param(date(2026, 2, 16), False, id="spring-festival-monday"),
        pytest.param(date(2026, 2, 14), True, id="make-up-saturday"),
        pytest.param(date(2026, 1, 4), True, id="make-up-sunday"),
        pytest.param(date(2026, 10, 10), True, id="make-up-saturday-after-national-day"),
    ],
)
def test_working_days_are_weekdays_minus_holidays_plus_make_up_days(
    calendar: WorkCalendar, day: date, working: bool
) -> None:
    assert calendar.is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        pytest.param(date(2026, 3, 6), 1, date(2026, 3, 9), id="friday-plus-one-skips-the-weekend"),
        pytest.param(date(2026, 3, 2), 5, date(2026, 3, 9), id="a-working-week"),
        pytest.param(date(2026, 4, 3), 1, date(2026, 4, 7), id="qingming-monday-is-skipped"),
        pytest.param(date(2026, 2, 13), 1, date(2026, 2, 14), id="make-up-saturday-counts"),
        pytest.param(date(2026, 2, 13), 2, date(2026, 2, 24), id="then-the-spring-festival-is-skipped"),
        pytest.param(date(2026, 9, 30), 5, date(2026, 10, 13), id="national-day-week-and-its-make-up-day"),
        pytest.param(date(2025, 12, 31), 1, date(2026, 1, 4), id="across-new-year-to-a-make-up-sunday"),
        pytest.param(date(2026, 10, 1), 0, date(2026, 10, 1), id="zero-days-is-the-start"),
    ],
)
def test_adding_working_days(calendar: WorkCalendar, start: date, days: int, expected: date) -> None:
    assert calendar.add_working_days(start, days) == expected


def test_a_working_day_period_counts_only_working_days(calendar: WorkCalendar, national: RuleSet) -> None:
    assert national.periods[RuleName.OBJECTION].count == "working"
    assert national.due(RuleName.OBJECTION, date(2026, 9, 30), calendar) == date(2026, 10, 13)


# --- calendar-day periods --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        pytest.param(date(2026, 9, 15), date(2026, 9, 30), id="ends-on-a-working-day"),
        pytest.param(date(2026, 9, 16), date(2026, 10, 8), id="ends-on-national-day-rolls-past-the-holiday"),
        pytest.param(date(2026, 3, 6), date(2026, 3, 23), id="ends-on-a-saturday-rolls-to-monday"),
        pytest.param(date(2026, 9, 5), date(2026, 9, 20), id="ends-on-a-make-up-sunday-which-is-working"),
    ],
)
def test_a_calendar_day_deadline_ending_on_a_non_working_day_rolls_to_the_next_working_day(
    calendar: WorkCalendar, national: RuleSet, start: date, expected: date
) -> None:
    assert national.periods[RuleName.FORWARD] == Period(days=15, count="calendar", article="Art. 22")
    assert national.due(RuleName.FORWARD, start, calendar) == expected


def test_without_rolling_a_calendar_day_deadline_may_end_on_a_holiday(
    calendar: WorkCalendar, national: RuleSet
) -> None:
    strict = national.model_copy(update={"roll_past_holidays": False})
    assert strict.due(RuleName.FORWARD, date(2026, 9, 16), calendar) == date(2026, 10, 1)


def test_the_start_day_is_the_local_date_in_the_jurisdictions_time_zone(
    calendar: WorkCalendar, national: RuleSet
) -> None:
    late_evening = datetime(2026, 9, 15, 15, 0, tzinfo=UTC)  # 23:00 on 15 September in Beijing
    after_midnight = datetime(2026, 9, 15, 17, 0, tzinfo=UTC)  # 01:00 on 16 September in Beijing
    assert national.due(RuleName.FORWARD, late_evening, calendar) == date(2026, 9, 30)
    assert national.due(RuleName.FORWARD, after_midnight, calendar) == date(2026, 10, 8)


def test_a_registered_case_cites_its_rules_and_rolled_deadlines(world: World) -> None:
    world.clock.set(beijing(2026, 9, 16))
    case_id = world.register()
    registered = world.events(case_id)[0]
    assert isinstance(registered, Case.Registered)
    assert registered.rules == RuleRef(jurisdiction="CN", version=1)
    assert registered.forward_due == date(2026, 10, 8)
    assert registered.acceptance_notice_due == date(2026, 10, 8)


def test_an_acceptance_whose_reply_period_ends_on_labour_day_is_due_after_the_holiday(world: World) -> None:
    world.clock.set(beijing(2026, 3, 2))
    case_id = world.accepted()
    assert world.case(case_id).reply_due == date(2026, 5, 6)  # 2 March + 60 days = 1 May, a holiday to 5 May


# --- which rule set applies -------------------------------------------------------------


def rule_book(world: World) -> RuleBook:
    book: RuleBook = world.ledger.repository.get(RuleBook.ID)
    return book


@pytest.mark.parametrize(
    ("jurisdiction", "expected"),
    [
        pytest.param("CN", "CN@1", id="national"),
        pytest.param("CN-HA", "CN-HA@1", id="henan-over-national"),
        pytest.param("CN-HA-ZK", "CN-HA@1", id="a-prefecture-falls-back-to-its-province"),
        pytest.param("CN-GD", "CN@1", id="a-province-without-rules-falls-back-to-national"),
    ],
)
def test_the_most_specific_jurisdictions_rules_apply(world: World, jurisdiction: str, expected: str) -> None:
    assert str(rule_book(world).rule_set_for(jurisdiction, beijing(2026, 3, 2)).ref) == expected


def test_rules_apply_only_from_their_effective_date(world: World) -> None:
    book = rule_book(world)
    assert str(book.rule_set_for("CN-HA", beijing(2015, 6, 1)).ref) == "CN-HA@1"
    with pytest.raises(NotFound):
        book.rule_set_for("CN", beijing(2021, 6, 1))
    with pytest.raises(NotFound):
        book.rule_set_for("CN-GD", beijing(2022, 4, 30))
    assert str(book.rule_set_for("CN-GD", beijing(2022, 5, 1, hour=0)).ref) == "CN@1"


def version_2(national: RuleSet, effective_from: date, **changes: Any) -> RuleSet:
    periods = dict(national.periods)
    periods[RuleName.REPLY] = Period(days=45, count="calendar")
    periods[RuleName.EXTENSION] = Period(days=15, count="calendar")
    return RuleSet.model_validate(
        {
            **national.model_dump(),
            "version": 2,
            "title": "信访工作条例 (test amendment)",
            "effective_from": effective_from,
            "periods": periods,
            **changes,
        }
    )


def test_the_version_in_force_at_a_date_applies(world: World, national: RuleSet) -> None:
    world.do(world.admin, "publish_rule_set", rule_set=version_2(national, date(2026, 4, 1)))
    book = rule_book(world)
    assert str(book.rule_set_for("CN", beijing(2026, 3, 31, hour=23)).ref) == "CN@1"
    assert str(book.rule_set_for("CN", beijing(2026, 4, 1, hour=0)).ref) == "CN@2"
    assert str(book.rule_set_for("CN-HA", beijing(2026, 6, 1)).ref) == "CN-HA@1"
    assert book.rule_set(RuleRef(jurisdiction="CN", version=1)) == national


def accepted_rules(world: World, case_id: UUID) -> RuleRef:
    (accepted,) = [e for e in world.events(case_id) if isinstance(e, Case.Accepted)]
    return accepted.rules


def test_a_new_version_governs_new_acceptances_while_earlier_cases_keep_theirs(
    world: World, national: RuleSet
) -> None:
    world.clock.set(beijing(2026, 3, 2))
    earlier = world.accepted()
    world.do(world.admin, "publish_rule_set", rule_set=version_2(national, date(2026, 4, 1)))
    world.clock.set(beijing(2026, 4, 2))
    later = world.accepted()

    assert accepted_rules(world, earlier) == RuleRef(jurisdiction="CN", version=1)
    assert accepted_rules(world, later) == RuleRef(jurisdiction="CN", version=2)
    assert world.case(earlier).reply_due == date(2026, 5, 6)  # 60 days, rolled past Labour Day
    assert world.case(later).reply_due == date(2026, 5, 18)  # 45 days = Sunday 17 May, rolled to Monday

    # The earlier case's later deadlines still follow version 1 (extensions up to 30 days)...
    world.do(world.township_head, "extend_deadline", case_id=earlier, days=30)
    # ...while version 2 allows at most 15.
    world.refuse(ExtensionRefused, world.township_head, "extend_deadline", case_id=later, days=30)
    world.do(world.township_head, "extend_deadline", case_id=later, days=15)


def test_a_backdated_acceptance_uses_the_rules_in_force_when_it_happened(
    world: World, national: RuleSet
) -> None:
    world.clock.set(beijing(2026, 3, 31, hour=9))
    case_id = world.register()
    world.do(world.admin, "publish_rule_set", rule_set=version_2(national, date(2026, 4, 1)))
    world.clock.set(beijing(2026, 4, 2))
    world.do(
        world.township_clerk,
        "accept_case",
        case_id=case_id,
        ctx_options={"occurred_at": beijing(2026, 3, 31, 15)},
    )
    assert accepted_rules(world, case_id) == RuleRef(jurisdiction="CN", version=1)


def test_a_henan_case_is_accepted_under_henan_rules(world: World) -> None:
    world.clock.set(beijing(2026, 3, 2))
    case_id = world.register(world.henan_clerk)
    world.advance(hours=1)
    world.do(world.henan_clerk, "accept_case", case_id=case_id)
    assert accepted_rules(world, case_id) == RuleRef(jurisdiction="CN-HA", version=1)
    assert world.case(case_id).reply_due == date(2026, 4, 1)  # 30 calendar days


# --- publishing rule sets ---------------------------------------------------------------


def test_versions_are_published_in_sequence(world: World, national: RuleSet) -> None:
    world.refuse(
        InvalidArgument,
        world.admin,
        "publish_rule_set",
        rule_set=version_2(national, date(2026, 4, 1), version=3),
    )
    world.refuse(
        InvalidArgument,
        world.admin,
        "publish_rule_set",
        rule_set=version_2(national, date(2026, 4, 1), version=1),
    )


def test_a_new_version_cannot_take_effect_before_the_previous_one(world: World, national: RuleSet) -> None:
    world.refuse(
        InvalidArgument, world.admin, "publish_rule_set", rule_set=version_2(national, date(2022, 4, 30))
    )


def test_a_rule_set_must_name_a_published_calendar(world: World, national: RuleSet) -> None:
    world.refuse(
        InvalidArgument,
        world.admin,
        "publish_rule_set",
        rule_set=version_2(national, date(2026, 4, 1), calendar="CN-HK"),
    )


def test_only_administrators_publish_rules(world: World, national: RuleSet) -> None:
    world.refuse(
        RoleRequired, world.county_head, "publish_rule_set", rule_set=version_2(national, date(2026, 4, 1))
    )


def test_a_rule_set_must_define_every_required_period(national: RuleSet) -> None:
    periods = {k: v for k, v in national.periods.items() if k is not RuleName.REPLY}
    with pytest.raises(ValueError, match="reply"):
        RuleSet.model_validate({**national.model_dump(), "periods": periods})


# --- publishing holiday calendars -----------------------------------------------------------


def test_a_published_holiday_year_changes_working_day_deadlines_from_then_on(world: World) -> None:
    """With 2027 unpublished only weekends are skipped; once 2027's holidays are in, they are too."""
    holidays = HolidayYear(calendar="CN", year=2027, holidays=(date(2027, 1, 1), date(2027, 1, 4)))
    world.do(world.admin, "publish_holidays", holidays=holidays)
    book: RuleBook = world.ledger.repository.get(RuleBook.ID)
    calendar = book.calendar("CN")
    assert not calendar.is_working_day(date(2027, 1, 4))
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 5)


def test_publishing_the_same_holiday_year_twice_records_nothing(world: World) -> None:
    again = next(year for year in packaged_holidays() if year.year == 2026)
    world.refuse(InvalidArgument, world.admin, "publish_holidays", holidays=again)


def test_only_administrators_publish_holidays(world: World) -> None:
    holidays = HolidayYear(calendar="CN", year=2027, holidays=(date(2027, 1, 1),))
    world.refuse(RoleRequired, world.county_head, "publish_holidays", holidays=holidays)
